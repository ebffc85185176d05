/* launcher-slurm.c: the `slurm` launcher.
 *
 * On a cluster head node the attempt is handed to Slurm: prepare writes the
 * batch wrapper and the env file (slurm-script.c), start runs sbatch with an
 * argv and stores the Slurm job id in state.json, a follower thread
 * (slurm-follow.c) turns the job's output file into out_fd and its end into
 * done_fd, collect reads the exit code the wrapper recorded and maps the
 * final Slurm state (slurm-state.c).  docs/slurm.md has the details. */
#include "runner/launcher.h"
#include "runner/runner.h"
#include "runner/slurm/slurm.h"
#include "common/buf.h"
#include "common/cmdrun.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SBATCH_TIMEOUT_MS 60000

/* A string of the runner's "slurm" settings (r->set.slurm), or NULL. */
static const char *setting(struct runner *r, const char *key)
{
	return strcmp(key, "partition") == 0    ? r->set.slurm.partition
	       : strcmp(key, "shared_dir") == 0 ? r->set.slurm.shared_dir
	       : strcmp(key, "account") == 0    ? r->set.slurm.account
	       : strcmp(key, "qos") == 0        ? r->set.slurm.qos
	                                        : NULL;
}

static void job_free(struct slurm_job *j)
{
	if (j == NULL)
		return;
	slurm_follow_stop(j);
	pthread_mutex_destroy(&j->lock);
	free(j->dir);
	free(j->script);
	free(j->env_file);
	free(j->out_file);
	free(j->exit_file);
	free(j->json_file);
	free(j->work);
	free(j->outputs);
	free(j->checkpoints);
	free(j);
}

/* Where the attempts' Slurm directories live: slurm.shared_dir, else
 * <state_dir>-slurm beside the state dir, which stays 0700 and root's
 * (docs/slurm.md, "Staging directory"). */
static char *stage_root(struct runner *r)
{
	const char *shared = setting(r, "shared_dir");
	size_t n = strlen(r->set.state_dir);

	if (shared != NULL)
		return xstrdup(shared);
	while (n > 1 && r->set.state_dir[n - 1] == '/')
		n--;
	return xasprintf("%.*s-slurm", (int)n, r->set.state_dir);
}

/* Make <stage>/<job>/<attempt>: <stage> (when missing) and <stage>/<job>
 * 0711 for a job user to pass, whatever the umask. */
static int stage_mkdir(const char *root, const char *dir, bool as_user,
                       struct err *e)
{
	mode_t mode = as_user ? 0711 : 0700;
	bool had_root = access(root, F_OK) == 0;
	char *job = xstrdup(dir), *slash = strrchr(job, '/');
	int rc;

	*slash = '\0';
	if ((rc = mkdir_p(dir, mode, e)) == 0 &&
	    ((!had_root && chmod(root, mode) < 0) || chmod(job, mode) < 0))
		rc = err_sys(e, TERR_IO, "chmod %s", job);
	free(job);
	return rc;
}

/* The launcher data with its paths: <stage>/<job>/<attempt>/ for the Slurm
 * files and the job's work, outputs and checkpoints. */
static int job_get(struct runner *r, struct slurm_job **out, struct err *e)
{
	struct slurm_job *j = r->launcher_data;
	char *root;
	int rc;

	if (j != NULL) {
		*out = j;
		return 0;
	}
	j = xcalloc(1, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	j->out_w = j->done_w = -1;
	j->log_start = -1;
	j->peak_rss = -1;
	j->log_fd = r->log_fd;
	j->poll_ms = r->set.slurm.poll_ms;
	j->sstat = r->set.slurm.sstat;
	root = stage_root(r);
	j->dir =
	    xasprintf("%s/%s/%lld", root, r->job_id, (long long)r->attempt);
	/* The job user must traverse <stage>/<job> to its own dir. */
	j->as_user = geteuid() == 0 && r->uid != 0;
	rc = stage_mkdir(root, j->dir, j->as_user, e);
	free(root);
	if (rc < 0) {
		job_free(j);
		return err_wrap(e, "slurm: staging directory");
	}
	j->script = xasprintf("%s/%s", j->dir, SLURM_SCRIPT);
	j->env_file = xasprintf("%s/%s", j->dir, SLURM_ENV);
	j->out_file = xasprintf("%s/%s", j->dir, SLURM_OUT);
	j->exit_file = xasprintf("%s/%s", j->dir, SLURM_EXIT);
	j->json_file = xasprintf("%s/%s", r->dir, SLURM_JSON);
	j->work = xasprintf("%s/work", j->dir);
	j->outputs = xasprintf("%s/outputs", j->dir);
	j->checkpoints = xasprintf("%s/checkpoints", j->dir);
	r->launcher_data = j;
	r->stage_dir = j->dir;
	*out = j;
	return 0;
}

/* cp -a src/. dst (the attempt's work and checkpoints into the staging
 * directory, its outputs and checkpoints back). */
static int copy_tree(const char *src, const char *dst, struct err *e)
{
	char *from = xasprintf("%s/.", src);
	const char *argv[] = {"cp", "-a", from, dst, NULL};
	struct buf errb;
	int st = 0, rc;

	buf_init(&errb, 4096);
	if ((rc = mkdir_p(dst, 0700, e)) == 0 &&
	    (rc = cmd_capture(argv, NULL, &errb, 0, &st, e)) == 0 && st > 0)
		rc = err_set(e, TERR_IO, "cp -a %s %s: %s", from, dst,
		             errb.data != NULL ? errb.data : "failed");
	buf_free(&errb);
	free(from);
	return rc;
}

/* Refuse a path whose parent directories the job user cannot pass
 * through (Slurm would only say JobLaunchFailure); what names it. */
static int check_traversable(struct runner *r, const char *path,
                             const char *what, const char *fix, struct err *e)
{
	char *p = xstrdup(path), *slash;
	struct stat st;
	int rc = 0;

	while ((slash = strrchr(p, '/')) != NULL && slash != p) {
		*slash = '\0';
		if (stat(p, &st) < 0) {
			rc = err_sys(e, TERR_IO, "stat %s", p);
			break;
		}
		if (!(st.st_mode & S_IXOTH) &&
		    !(st.st_uid == r->uid && (st.st_mode & S_IXUSR)) &&
		    !(st.st_gid == r->gid && (st.st_mode & S_IXGRP))) {
			rc = err_set(e, TERR_PERM,
			             "%s: the job user (uid %u) cannot enter "
			             "%s (%s)",
			             what, (unsigned)r->uid, p, fix);
			break;
		}
	}
	free(p);
	return rc;
}

/* chown -R the job's Slurm directory to the job user. */
static int give_to_user(struct runner *r, struct slurm_job *j, struct err *e)
{
	char *owner = xasprintf("%u:%u", (unsigned)r->uid, (unsigned)r->gid);
	const char *argv[] = {"chown", "-R", owner, j->dir, NULL};
	int st = 0, rc;

	if ((rc = cmd_capture(argv, NULL, NULL, 0, &st, e)) == 0 && st != 0)
		rc =
		    err_set(e, TERR_IO, "chown -R %s %s failed", owner, j->dir);
	if (rc == 0 && chmod(j->dir, 0700) < 0)
		rc = err_sys(e, TERR_IO, "chmod %s", j->dir);
	free(owner);
	return rc;
}

/* Write the env file (0600: it may hold secrets) and the batch script. */
static int write_files(struct runner *r, struct slurm_job *j, struct err *e)
{
	struct slurm_paths p = {j->dir,         j->work,     j->outputs,
	                        j->checkpoints, j->env_file, j->exit_file};
	struct buf env, script;
	int rc;

	buf_init(&env, 64 << 20);
	buf_init(&script, 64 << 20);
	if ((rc = slurm_script_env(&p, r->envp, &env, e)) < 0 ||
	    (rc = slurm_script_batch(&p, r->argv, r->spec->workdir, &script,
	                             e)) < 0 ||
	    (rc = file_write_atomic(j->env_file, env.data, env.len, 0600, e)) <
	        0 ||
	    (rc = file_write_atomic(j->script, script.data, script.len, 0700,
	                            e)) < 0)
		err_wrap(e, "slurm: write the batch script");
	else if (j->as_user && (chown(j->env_file, r->uid, r->gid) < 0 ||
	                        chown(j->script, r->uid, r->gid) < 0))
		rc = err_sys(e, TERR_IO, "slurm: chown %s", j->env_file);
	if (env.data != NULL)
		freezero(env.data, env.len);
	env.data = NULL;
	buf_free(&env);
	buf_free(&script);
	return rc;
}

/* Fields of the spec a Slurm job cannot be given (docs/launchers.md):
 * refused, never silently dropped. */
static int refuse_unhonoured(const struct jobspec *sp, struct err *e)
{
	if (sp->network == NET_NONE)
		return err_set(
		    e, TERR_UNSUPP,
		    "network: 'none' cannot be honoured by the slurm "
		    "launcher (a Slurm job uses its node's network); "
		    "drop it, or run the job with the sandbox or "
		    "docker launcher");
	if (sp->nmounts > 0)
		return err_set(e, TERR_UNSUPP,
		               "mounts: the slurm launcher cannot bind-mount "
		               "into a Slurm job; use the paths the compute "
		               "nodes see, or another launcher");
	if (sp->resources.pids > 0)
		return err_set(
		    e, TERR_UNSUPP,
		    "resources.pids: the slurm launcher cannot limit "
		    "a Slurm job's processes; drop it, or use another "
		    "launcher");
	return 0;
}

/* The job runs as the job user: the staging directory's parents and the
 * environment's prefix must let it through. */
static int check_user_paths(struct runner *r, struct slurm_job *j,
                            struct err *e)
{
	char *bin;
	int rc;

	rc = check_traversable(r, j->dir, "slurm: staging directory",
	                       "chmod o+x it, or set slurm_shared_dir; "
	                       "docs/slurm.md",
	                       e);
	if (rc < 0 || r->env.prefix == NULL)
		return rc;
	bin = xasprintf("%s/bin", r->env.prefix);
	rc = check_traversable(r, bin, "slurm: the job's environment",
	                       "put env_dir where the job user can enter, "
	                       "outside the 0700 state directory; "
	                       "docs/slurm.md",
	                       e);
	free(bin);
	return rc;
}

/* Fill the staging directory: the prepared work dir, a restored
 * checkpoint, empty outputs; all the job user's. */
static int stage_in(struct runner *r, struct slurm_job *j, struct err *e)
{
	int rc;

	if ((rc = copy_tree(r->work_dir, j->work, e)) < 0 ||
	    (rc = copy_tree(r->checkpoints_dir, j->checkpoints, e)) < 0 ||
	    (rc = mkdir_p(j->outputs, 0700, e)) < 0 ||
	    (j->as_user && (rc = check_user_paths(r, j, e)) < 0) ||
	    (j->as_user && (rc = give_to_user(r, j, e)) < 0))
		return rc;
	return 0;
}

static int slurm_prepare(struct runner *r, struct err *e)
{
	const char *argv[] = {"sbatch", "--version", NULL};
	struct slurm_job *j;
	int st = 0, rc;

	if ((rc = refuse_unhonoured(r->spec, e)) < 0 ||
	    (rc = job_get(r, &j, e)) < 0)
		return rc;
	if (cmd_capture(argv, NULL, NULL, 10000, &st, e) < 0 || st > 0)
		return err_set(e, TERR_UNSUPP,
		               "slurm launcher: cannot run 'sbatch' (is this a "
		               "Slurm head node with slurm-client installed?)");
	if ((rc = stage_in(r, j, e)) < 0)
		return rc;
	if (r->argv != NULL)
		return write_files(r, j, e);
	return 0;
}

/* What sbatch is asked for, from the spec and the runner settings. */
static void submit_fill(struct runner *r, struct slurm_job *j,
                        struct slurm_submit *s, char *name)
{
	const struct jobspec *sp = r->spec;

	memset(s, 0, sizeof(*s));
	s->job_name = name;
	s->script = j->script;
	s->output = j->out_file;
	s->chdir = j->work;
	s->partition =
	    sp->slurm.partition ? sp->slurm.partition : setting(r, "partition");
	s->account =
	    sp->slurm.account ? sp->slurm.account : setting(r, "account");
	s->qos = sp->slurm.qos ? sp->slurm.qos : setting(r, "qos");
	s->cpus =
	    sp->resources.cpus > 0 ? (int64_t)(sp->resources.cpus + 0.999) : 0;
	s->mem_mb = (sp->resources.memory + (1 << 20) - 1) >> 20;
	s->gpus = sp->resources.gpus;
	s->time_min = slurm_time_minutes(sp->timeout_ms);
	s->nodes = sp->slurm.nodes;
	s->ntasks = sp->slurm.ntasks;
	s->uid = j->as_user ? (int64_t)r->uid : -1;
	s->gid = j->as_user ? (int64_t)r->gid : -1;
}

/* Run sbatch; j->job_id on success. */
static int submit(struct runner *r, struct slurm_job *j, struct err *e)
{
	char *name = slurm_job_name(r->job_id, r->spec->name);
	struct slurm_submit s;
	struct buf out, errb;
	char **argv;
	int st = 0, rc;

	submit_fill(r, j, &s, name);
	argv = slurm_sbatch_argv(&s);
	buf_init(&out, 4096);
	buf_init(&errb, 8192);
	rc = cmd_capture((const char *const *)argv, &out, &errb,
	                 SBATCH_TIMEOUT_MS, &st, e);
	if (rc == 0 && st > 0)
		rc = err_set(e, TERR_FAIL, "sbatch refused the job: %s",
		             errb.data != NULL ? errb.data : "(no message)");
	if (rc == 0)
		rc = slurm_parse_jobid(out.data != NULL ? out.data : "",
		                       j->job_id, e);
	buf_free(&out);
	buf_free(&errb);
	runner_strv_free(argv);
	free(name);
	return rc;
}

static int slurm_start(struct runner *r, int *out_fd, int *done_fd,
                       struct err *e)
{
	struct slurm_job *j;
	int rc;

	if ((rc = job_get(r, &j, e)) < 0)
		return rc;
	if (access(j->script, F_OK) != 0 && (rc = write_files(r, j, e)) < 0)
		return rc;
	if ((rc = submit(r, j, e)) < 0)
		return rc;
	snprintf(r->state.launcher_ref, sizeof(r->state.launcher_ref), "%s",
	         j->job_id);
	snprintf(r->state.launcher, sizeof(r->state.launcher), "slurm");
	if ((rc = runner_save_state(r, e)) < 0 ||
	    (rc = slurm_json_save(j, e)) < 0)
		return err_wrap(e, "slurm job %s", j->job_id);
	runner_logf(r, "slurm", "submitted batch job %s", j->job_id);
	return slurm_follow_start(j, out_fd, done_fd, e);
}

static int slurm_signal(struct runner *r, int sig, struct err *e)
{
	struct slurm_job *j = r->launcher_data;
	const char *name = sigabbrev_np(sig);
	bool queued;

	if (j == NULL || j->job_id[0] == '\0')
		return err_set(e, TERR_NOTFOUND, "slurm: no job to signal");
	if (name == NULL)
		return err_set(e, TERR_INVAL, "slurm: unknown signal %d", sig);
	j->we_stopped = true;
	atomic_store(&j->hurry, true);
	pthread_mutex_lock(&j->lock);
	queued =
	    j->info.known && slurm_state_phase(j->info.state) == SLURM_QUEUED;
	pthread_mutex_unlock(&j->lock);
	/* Nothing runs yet to take a signal: take it out of the queue. */
	return slurm_cancel(j->job_id, queued ? NULL : name, e);
}

static int slurm_kill(struct runner *r, struct err *e)
{
	struct slurm_job *j = r->launcher_data;
	struct err ignore = {0};

	if (j == NULL || j->job_id[0] == '\0')
		return 0;
	j->we_stopped = true;
	atomic_store(&j->hurry, true);
	slurm_cancel(j->job_id, "KILL", &ignore);
	return slurm_cancel(j->job_id, NULL, e);
}

/* Exit code and signal from the wrapper's file, else from Slurm. */
static void exit_fill(struct slurm_job *j, const struct slurm_info *info,
                      struct launch_exit *ex)
{
	struct err e = {0};
	int rc;

	if (!j->ran && access(j->exit_file, F_OK) != 0 &&
	    (!info->known || info->node[0] == '\0' ||
	     strcmp(info->node, "(null)") == 0)) {
		ex->exit_code = -1; /* it never ran: no exit code */
		ex->signal = 0;
	} else if (slurm_exit_read(j->exit_file, &rc, &e) == 0) {
		if (rc > 128 && rc < 128 + 65) { /* sh: killed by a signal */
			ex->exit_code = -1;
			ex->signal = rc - 128;
		} else {
			ex->exit_code = rc;
		}
	} else if (info->known && info->exit_signal != 0) {
		ex->exit_code = -1;
		ex->signal = info->exit_signal;
	} else if (info->known) {
		ex->exit_code = info->exit_code;
	} else {
		ex->exit_code = -1;
		ex->signal = SIGKILL;
	}
}

/* cp src/. dst as the job user, who owns src (the staging dir) and dst:
 * dst is entered as root first, so its 0700 parents need not let the job
 * user through, and root never walks a tree where a link swapped in
 * mid-copy could lead it out (docs/slurm.md). */
static int copy_as_user(struct runner *r, struct slurm_job *j, const char *src,
                        const char *dst, struct err *e)
{
	char *from = xasprintf("%s/.", src);
	char *uid = xasprintf("--reuid=%u", (unsigned)r->uid);
	char *gid = xasprintf("--regid=%u", (unsigned)r->gid);
	const char *argv[] = {"setpriv",
	                      uid,
	                      gid,
	                      "--clear-groups",
	                      "--",
	                      "cp",
	                      "-R",
	                      "-P",
	                      "--preserve=mode,timestamps",
	                      from,
	                      ".",
	                      NULL};
	int here = -1, there = -1, st = 0, rc;
	struct buf errb;

	buf_init(&errb, 4096);
	if (!j->as_user) {
		rc = copy_tree(src, dst, e);
		goto out;
	}
	if ((rc = mkdir_p(dst, 0700, e)) < 0)
		goto out;
	here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	there = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (here < 0 || there < 0 || fchown(there, r->uid, r->gid) < 0 ||
	    fchdir(there) < 0) {
		rc = err_sys(e, TERR_IO, "enter %s", dst);
		goto out;
	}
	rc = cmd_capture(argv, NULL, &errb, 0, &st, e);
	if (fchdir(here) < 0 && rc == 0)
		rc = err_sys(e, TERR_IO, "fchdir");
	if (rc == 0 && st != 0)
		rc = err_set(e, TERR_IO, "cp %s %s (as uid %u): %s", from, dst,
		             (unsigned)r->uid,
		             errb.data != NULL ? errb.data : "failed");
out:
	if (here >= 0)
		close(here);
	if (there >= 0)
		close(there);
	buf_free(&errb);
	free(from);
	free(uid);
	free(gid);
	return rc;
}

/* Outputs and checkpoints back into the attempt directory, where the
 * agent uploads and packs them. */
static int stage_out(struct runner *r, struct slurm_job *j, struct err *e)
{
	int rc;

	/* No outputs/: an earlier runner of the attempt brought them back
	 * and removed the staging directory before it was killed. */
	if (access(j->outputs, F_OK) == 0 &&
	    (rc = copy_as_user(r, j, j->outputs, r->outputs_dir, e)) < 0)
		return err_wrap(e, "slurm: copy outputs back from %s", j->dir);
	if (access(j->checkpoints, F_OK) != 0)
		return 0;
	if ((rc = rm_rf(r->checkpoints_dir, e)) < 0 ||
	    (rc = copy_as_user(r, j, j->checkpoints, r->checkpoints_dir, e)) <
	        0)
		return err_wrap(e, "slurm: copy checkpoints back from %s",
		                j->dir);
	return 0;
}

static int slurm_collect(struct runner *r, struct launch_exit *ex,
                         struct err *e)
{
	struct slurm_job *j = r->launcher_data;
	struct slurm_info info;

	if (j == NULL)
		return err_set(e, TERR_NOTFOUND, "slurm: nothing to collect");
	slurm_follow_stop(j);
	info = j->info;
	memset(ex, 0, sizeof(*ex));
	ex->peak_memory_bytes = j->peak_rss; /* sstat samples; -1 none */
	ex->cpu_seconds = -1;
	exit_fill(j, &info, ex);
	if (j->stuck) {
		struct err ce = {0};
		if (slurm_cancel(j->job_id, NULL, &ce) < 0)
			runner_logf(r, "slurm", "%s", ce.msg);
		ex->reason = "launch_failed";
		runner_logf(r, "slurm",
		            "batch job %s ended: Slurm holds it PENDING (%s), "
		            "which waiting does not change; taken out of the "
		            "queue",
		            j->job_id, info.reason);
		/* the final event's message (the attempt did not fail here) */
		err_set(e, TERR_UNSUPP,
		        "Slurm cannot start batch job %s: PENDING (%s)",
		        j->job_id, info.reason);
	} else if (info.known) {
		bool placed = info.node[0] && strcmp(info.node, "(null)") != 0;
		ex->reason = slurm_state_reason(info.state, j->we_stopped);
		ex->oom = ex->reason != NULL && strcmp(ex->reason, "oom") == 0;
		runner_logf(r, "slurm", "batch job %s ended %s%s%s%s %s%s",
		            j->job_id, info.state, info.reason[0] ? " (" : "",
		            info.reason, info.reason[0] ? ")" : "",
		            placed ? "on" : "before Slurm started it on a node",
		            placed ? info.node : "");
	} else if (access(j->exit_file, F_OK) != 0) {
		ex->reason = "lost";
		runner_logf(r, "slurm",
		            "batch job %s is unknown to Slurm and left no exit "
		            "code",
		            j->job_id);
	}
	/* A failed copy back is the outputs' failure, not the launch's: the
	 * staging directory stays for the admin (e carries the message). */
	if (stage_out(r, j, e) == 0)
		j->collected = true;
	else if (ex->reason == NULL && ex->exit_code == 0 && ex->signal == 0)
		ex->reason = "outputs_failed";
	return 0;
}

static int slurm_reattach(struct runner *r, int *out_fd, int *done_fd,
                          struct err *e)
{
	struct slurm_job *j;
	struct err ignore = {0};
	int rc;

	if ((rc = job_get(r, &j, e)) < 0)
		return rc;
	if (slurm_json_load(j, &ignore) < 0)
		j->log_start = -1;
	if (r->state.launcher_ref[0] != '\0')
		snprintf(j->job_id, sizeof(j->job_id), "%.63s",
		         r->state.launcher_ref);
	if (j->job_id[0] == '\0') {
		/* Killed between sbatch and saving the id: find it by name. */
		char *name = slurm_job_name(r->job_id, r->spec->name);
		rc = slurm_find_job(name, j->work, j->job_id, e);
		free(name);
		if (rc == TERR_NOTFOUND)
			return err_set(e, TERR_UNSUPP,
			               "slurm: no Slurm job was submitted for "
			               "this attempt; nothing to reattach");
		if (rc < 0)
			return rc;
	}
	if ((rc = slurm_follow_resume_offset(j, r, e)) < 0)
		return err_wrap(e, "slurm job %s", j->job_id);
	j->log_start = -1; /* a new stretch of output begins */
	runner_logf(r, "slurm", "following batch job %s again from byte %lld",
	            j->job_id, (long long)j->out_offset);
	if ((rc = slurm_json_save(j, e)) < 0)
		return rc;
	return slurm_follow_start(j, out_fd, done_fd, e);
}

static bool slurm_pending(struct runner *r, char *reason, size_t size)
{
	struct slurm_job *j = r->launcher_data;
	bool queued;

	if (j == NULL)
		return false;
	pthread_mutex_lock(&j->lock);
	queued =
	    j->info.known && slurm_state_phase(j->info.state) == SLURM_QUEUED;
	snprintf(reason, size, "%s", queued ? j->info.reason : "");
	pthread_mutex_unlock(&j->lock);
	return queued;
}

/* Remove the attempt's staging directory once nothing there is needed:
 * its outputs and checkpoints are back, or no Slurm job was submitted.
 * rm -rf: it does not follow a symlink the job user swaps in. */
static void stage_remove(struct runner *r, struct slurm_job *j)
{
	const char *argv[] = {"rm", "-rf",  "--one-file-system",
	                      "--", j->dir, NULL};
	char *parent = xstrdup(j->dir), *slash = strrchr(parent, '/');
	struct err e = {0};
	int st = 0;

	if (cmd_capture(argv, NULL, NULL, 60000, &st, &e) < 0 || st != 0)
		runner_logf(r, "slurm", "staging directory %s not removed%s%s",
		            j->dir, e.msg[0] ? ": " : "", e.msg);
	if (slash != NULL) {
		*slash = '\0';
		rmdir(
		    parent); /* <stage>/<job>, once its last attempt is gone */
	}
	free(parent);
}

static void slurm_cleanup(struct runner *r)
{
	struct slurm_job *j = r->launcher_data;

	if (j != NULL && (j->collected || j->job_id[0] == '\0'))
		stage_remove(r, j);
	job_free(r->launcher_data);
	r->launcher_data = NULL;
	r->stage_dir = NULL;
}

const struct launcher_ops launcher_slurm = {
    .name = "slurm",
    .prepare = slurm_prepare,
    .start = slurm_start,
    .signal = slurm_signal,
    .kill = slurm_kill,
    .collect = slurm_collect,
    .reattach = slurm_reattach,
    .cleanup = slurm_cleanup,
    .pending = slurm_pending,
};
