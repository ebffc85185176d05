/* slurm-state.c: what Slurm says about a job, and what that means here.
 *
 * The mapping (docs/slurm.md): PENDING and friends are queued at the
 * cluster; RUNNING, COMPLETING, SUSPENDED are running; the final states end
 * the attempt, some with a reason the exit code alone does not give. */
#include "runner/slurm/slurm.h"
#include "common/buf.h"
#include "common/cmdrun.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLURM_CMD_TIMEOUT_MS 30000

/* "2:0" -> code 2, signal 0. */
static void parse_exit(const char *v, int *code, int *sig)
{
	int64_t c = 0, s = 0;
	char tmp[32];
	const char *colon = strchr(v, ':');

	*code = 0;
	*sig = 0;
	if (colon == NULL || (size_t)(colon - v) >= sizeof(tmp))
		return;
	memcpy(tmp, v, (size_t)(colon - v));
	tmp[colon - v] = '\0';
	if (parse_i64(tmp, 0, 255, &c, NULL) == 0 &&
	    parse_i64(colon + 1, 0, 255, &s, NULL) == 0) {
		*code = (int)c;
		*sig = (int)s;
	}
}

int slurm_info_parse(const char *text, struct slurm_info *info, struct err *e)
{
	char state[32], ec[32];

	memset(info, 0, sizeof(*info));
	if (!str_kv_field(text, "JobState", state, sizeof(state)))
		return err_set(e, TERR_PROTO,
		               "scontrol: no JobState in '%.80s'", text);
	info->known = true;
	state[strcspn(state, "+")] = '\0';
	snprintf(info->state, sizeof(info->state), "%s", state);
	if (!str_kv_field(text, "Reason", info->reason, sizeof(info->reason)))
		info->reason[0] = '\0';
	if (!str_kv_field(text, "BatchHost", info->node, sizeof(info->node)))
		info->node[0] = '\0';
	if (str_kv_field(text, "ExitCode", ec, sizeof(ec)))
		parse_exit(ec, &info->exit_code, &info->exit_signal);
	return 0;
}

int slurm_info_query(const char *job_id, struct slurm_info *info, struct err *e)
{
	const char *argv[] = {"scontrol", "show", "job", "-o", job_id, NULL};
	struct buf out, errb;
	int st = 0, r;

	buf_init(&out, 1 << 16);
	buf_init(&errb, 4096);
	if ((r = cmd_capture(argv, &out, &errb, SLURM_CMD_TIMEOUT_MS, &st, e)) <
	    0)
		goto out;
	if (errb.data != NULL && strstr(errb.data, "Invalid job id")) {
		memset(info, 0, sizeof(*info));
		info->known = false;
		goto out;
	}
	if (st != 0 && st != -1) {
		r = err_set(e, TERR_NET, "scontrol show job %s: %s", job_id,
		            errb.data != NULL ? errb.data : "failed");
		goto out;
	}
	r = slurm_info_parse(out.data != NULL ? out.data : "", info, e);
out:
	buf_free(&out);
	buf_free(&errb);
	return r;
}

static bool in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i] != NULL; i++) {
		if (strcmp(s, list[i]) == 0)
			return true;
	}
	return false;
}

enum slurm_phase slurm_state_phase(const char *state)
{
	static const char *const queued[] = {
	    "PENDING",     "CONFIGURING",   "REQUEUED", "REQUEUE_HOLD",
	    "REQUEUE_FED", "RESV_DEL_HOLD", NULL};
	static const char *const ended[] = {
	    "COMPLETED", "FAILED",        "CANCELLED", "TIMEOUT",
	    "DEADLINE",  "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
	    "BOOT_FAIL", "SPECIAL_EXIT",  "REVOKED",   NULL};

	if (in_list(state, queued))
		return SLURM_QUEUED;
	if (in_list(state, ended))
		return SLURM_ENDED;
	return SLURM_RUNNING; /* RUNNING, COMPLETING, SUSPENDED, ... */
}

bool slurm_reason_hopeless(const char *reason)
{
	static const char *const never[] = {
	    "PartitionConfig",    "PartitionNodeLimit",
	    "PartitionTimeLimit", "PartitionDown",
	    "PartitionInactive",  "ReqNodeNotAvail",
	    "BadConstraints",     "InvalidAccount",
	    "InvalidQOS",         "AccountNotAllowed",
	    "QOSNotAllowed",      "NodeDown",
	    "FrontEndDown",       "DependencyNeverSatisfied",
	    "InvalidReservation", NULL};
	char word[64];

	/* "ReqNodeNotAvail, UnavailableNodes:n1": the first word */
	snprintf(word, sizeof(word), "%s", reason);
	word[strcspn(word, ", ")] = '\0';
	return in_list(word, never);
}

const char *slurm_state_reason(const char *state, bool we_stopped)
{
	if (strcmp(state, "TIMEOUT") == 0 || strcmp(state, "DEADLINE") == 0)
		return "timed_out";
	if (strcmp(state, "OUT_OF_MEMORY") == 0)
		return "oom";
	if (strcmp(state, "NODE_FAIL") == 0 || strcmp(state, "BOOT_FAIL") == 0)
		return "lost";
	if (strcmp(state, "PREEMPTED") == 0)
		return "preempted";
	if (strcmp(state, "CANCELLED") == 0 && !we_stopped)
		return "cancelled";
	return NULL;
}

int slurm_open_job_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

int slurm_exit_read(const char *path, int *code, struct err *e)
{
	char text[64];
	int64_t v;
	ssize_t n;
	int fd = slurm_open_job_file(path), r;

	if (fd < 0)
		return err_sys(e, errno == ENOENT ? TERR_NOTFOUND : TERR_IO,
		               "open %s", path);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return err_sys(e, TERR_IO, "read %s", path);
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	if ((r = parse_i64(text, 0, 255, &v, e)) < 0)
		err_wrap(e, "%s", path);
	else
		*code = (int)v;
	return r;
}

int slurm_cancel(const char *job_id, const char *signame, struct err *e)
{
	char *sigopt =
	    signame != NULL ? xasprintf("--signal=%s", signame) : NULL;
	const char *with_sig[] = {"scancel", "--full", sigopt, job_id, NULL};
	const char *plain[] = {"scancel", job_id, NULL};
	struct buf errb;
	int st = 0, r;

	buf_init(&errb, 4096);
	r = cmd_capture(sigopt != NULL ? with_sig : plain, NULL, &errb,
	                SLURM_CMD_TIMEOUT_MS, &st, e);
	if (r == 0 && st != 0 && st != -1)
		r = err_set(e, TERR_FAIL, "scancel %s %s: %s",
		            signame != NULL ? signame : "", job_id,
		            errb.data != NULL ? errb.data : "failed");
	buf_free(&errb);
	free(sigopt);
	return r;
}

int slurm_find_job(const char *name, const char *work_dir, char out[64],
                   struct err *e)
{
	char *opt = xasprintf("--name=%s", name);
	const char *argv[] = {"squeue", "-h", "-t",    "all",
	                      opt,      "-o", "%i %Z", NULL};
	struct buf b;
	int st = 0, r;

	buf_init(&b, 1 << 20);
	if ((r = cmd_capture(argv, &b, NULL, SLURM_CMD_TIMEOUT_MS, &st, e)) < 0)
		goto out;
	r = err_set(e, TERR_NOTFOUND, "no Slurm job %s in %s", name, work_dir);
	for (char *line = b.data; line != NULL && *line != '\0';) {
		char *nl = strchr(line, '\n'), *sp;
		if (nl != NULL)
			*nl = '\0';
		sp = strchr(line, ' ');
		if (sp != NULL && strcmp(sp + 1, work_dir) == 0 &&
		    (size_t)(sp - line) < 64) {
			memcpy(out, line, (size_t)(sp - line));
			out[sp - line] = '\0';
			r = 0;
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
out:
	buf_free(&b);
	free(opt);
	return r;
}

/* "91468K" -> bytes (sstat sizes: K, M, G, T; no suffix: bytes). */
static int64_t rss_bytes(const char *v)
{
	char *end = NULL;
	double n = strtod(v, &end);
	int64_t mult = 1;

	if (end == v || n < 0)
		return -1;
	switch (*end) {
	case 'K':
		mult = 1LL << 10;
		break;
	case 'M':
		mult = 1LL << 20;
		break;
	case 'G':
		mult = 1LL << 30;
		break;
	case 'T':
		mult = 1LL << 40;
		break;
	default:
		break;
	}
	return (int64_t)(n * (double)mult);
}

int64_t slurm_sstat_maxrss(const char *job_id)
{
	char *step = xasprintf("%s.batch", job_id);
	const char *argv[] = {"sstat", "-n", "-P",     "-j",
	                      step,    "-o", "MaxRSS", NULL};
	struct buf b;
	int64_t best = -1;
	int st = 0;

	buf_init(&b, 65536);
	if (cmd_capture(argv, &b, NULL, SLURM_CMD_TIMEOUT_MS, &st, NULL) == 0 &&
	    b.data != NULL) {
		for (const char *l = b.data; *l != '\0';) {
			int64_t v = rss_bytes(l);
			if (v > best)
				best = v;
			l += strcspn(l, "\n");
			if (*l == '\n')
				l++;
		}
	}
	free(step);
	buf_free(&b);
	return best;
}
