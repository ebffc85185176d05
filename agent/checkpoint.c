/* checkpoint.c: an attempt's checkpoint, both ways (docs/checkpointing.md).
 *
 * Up: when a finishing attempt ended `preempted`, `hung`, or `timed_out`
 * with checkpoint.on_timeout, `tether-runner pack-checkpoint` packs its
 * checkpoints/ into checkpoint-out.<sha256>.tar.gz (temp name, fsync,
 * rename) and then writes checkpoint-out.json {"state": "built", ...};
 * the agent uploads it (PUT /attempts/J/A/checkpoint, sha256 checked by
 * the workspace) and records {"state": "uploaded"}; only then may the
 * final event go, so the requeued attempt carries the checkpoint.  Every
 * step is a file in the attempt directory, so an agent killed at any
 * point resumes where it was: a half archive is never named in the json,
 * and a half upload never matches its sha256 at the workspace.
 *
 * Down: a leased attempt whose job has a checkpoint gets resume.json; the
 * checkpoint is downloaded into checkpoint.tar.gz.part, checked against
 * its sha256 and renamed before the runner starts (it restores it and
 * sets TETHER_RESUME=1). */
#include "agent/agent.h"
#include "agent/lifecycle.h"

#include "common/attempt.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CKPT_JSON   "checkpoint-out.json"
#define CKPT_RESUME "resume.json"
#define CKPT_PACKS  3 /* packer runs before the attempt goes without */

enum ckpt_state { CK_UNKNOWN, CK_PACKING, CK_BUILT, CK_UPLOADING, CK_DONE };

struct ckpt {
	enum ckpt_state state;
	pid_t pid;
	int pidfd;
	struct tp_call *call;
	int packs; /* packer runs started by this agent */
	char sha[SHA256_HEX_LEN + 1];
	int64_t size;
};

static struct ckpt *ckpt_get(struct att *t)
{
	if (t->ckpt == NULL) {
		t->ckpt = xcalloc(1, sizeof(*t->ckpt));
		t->ckpt->pidfd = -1;
	}
	return t->ckpt;
}

void checkpoint_att_free(struct att *t)
{
	struct ckpt *c = t->ckpt;

	if (c == NULL)
		return;
	if (c->pidfd >= 0) {
		loop_unwatch(t->a->loop, c->pidfd);
		close(c->pidfd);
	}
	if (c->call != NULL)
		t->a->tp->cancel(t->a->t, c->call);
	free(c);
	t->ckpt = NULL;
}

/* One of this file's own JSON files (checkpoint state), or NULL. */
static json_t *ckpt_load(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name), *text = NULL;
	json_t *j = NULL;

	if (file_read_all(path, 1 << 20, &text, NULL, NULL) == 0)
		j = json_loads(text, 0, NULL);
	free(text);
	free(path);
	return j;
}

static void ckpt_save_state(struct att *t, const char *state)
{
	char *path = xasprintf("%s/%s", t->dir, CKPT_JSON), *text;
	json_t *j = json_pack("{s:s, s:s, s:I}", "state", state, "sha256",
	                      t->ckpt->sha, "size", (json_int_t)t->ckpt->size);
	struct err e = {0};

	text = json_dumps(j, JSON_COMPACT);
	if (file_write_atomic(path, text, strlen(text), 0600, &e) < 0)
		log_error("job=%s: %s", t->job, e.msg);
	free(text);
	free(path);
	json_decref(j);
}

/* Does the attempt's end ask for a checkpoint upload? */
static bool ckpt_wanted(struct att *t)
{
	json_t *res = NULL, *spec = NULL;
	const char *why;
	bool want = false;

	attempt_result_read(t->dir, &res, NULL);
	why = json_string_value(json_object_get(res, "reason"));
	if (why != NULL &&
	    (strcmp(why, "preempted") == 0 || strcmp(why, "hung") == 0)) {
		want = true;
	} else if (why != NULL && strcmp(why, "timed_out") == 0) {
		attempt_spec_read(t->dir, &spec, NULL);
		want = json_is_true(json_object_get(
		    json_object_get(json_object_get(spec, "spec"),
		                    "checkpoint"),
		    "on_timeout"));
		json_decref(spec);
	}
	json_decref(res);
	return want;
}

static void ckpt_on_packed(void *arg, int fd, uint32_t events)
{
	struct att *t = arg;
	struct ckpt *c = t->ckpt;
	int status = 0;

	(void)events;
	loop_unwatch(t->a->loop, fd);
	close(fd);
	c->pidfd = -1;
	if (waitpid(c->pid, &status, WNOHANG) == c->pid &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		log_error("job=%s attempt=%lld: packing the checkpoint failed "
		          "(runner.log); reported without one",
		          t->job, (long long)t->attempt);
		ckpt_save_state(t, "failed");
	}
	c->state = CK_UNKNOWN; /* look at checkpoint-out.json again */
	att_poke_soon(t);
}

/* Fork `tether-runner pack-checkpoint DIR`, watched by a pidfd. */
static void ckpt_pack(struct att *t)
{
	struct ckpt *c = t->ckpt;
	char *logp = xasprintf("%s/runner.log", t->dir);
	char *argv[] = {t->a->runner_path, "pack-checkpoint", t->dir, NULL};
	char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	struct err e = {0};
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execve(argv[0], argv, envp);
		_exit(127);
	}
	free(logp);
	if (pid < 0 || (c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0 ||
	    loop_watch(t->a->loop, c->pidfd, EPOLLIN, ckpt_on_packed, t, &e) <
	        0) {
		log_error("job=%s: cannot pack the checkpoint: %s", t->job,
		          pid < 0 ? strerror(errno) : e.msg);
		ckpt_save_state(t, "failed");
		c->state = CK_DONE;
		return;
	}
	c->pid = pid;
	c->packs++;
	c->state = CK_PACKING;
	log_info("job=%s attempt=%lld packing the checkpoint", t->job,
	         (long long)t->attempt);
}

/* What checkpoint-out.json says, or a pack when there is none yet. */
static void ckpt_decide(struct att *t)
{
	struct ckpt *c = t->ckpt;
	json_t *j = ckpt_load(t->dir, CKPT_JSON);
	const char *st = json_string_value(json_object_get(j, "state"));
	const char *sha = json_string_value(json_object_get(j, "sha256"));

	if (st == NULL && c->packs >= CKPT_PACKS) {
		log_error("job=%s attempt=%lld: no checkpoint after %d packer "
		          "runs; reported without one",
		          t->job, (long long)t->attempt, c->packs);
		ckpt_save_state(t, "failed");
		c->state = CK_DONE;
	} else if (st == NULL) {
		if (ckpt_wanted(t))
			ckpt_pack(t);
		else
			c->state = CK_DONE;
	} else if (strcmp(st, "built") == 0 && sha != NULL &&
	           strlen(sha) == SHA256_HEX_LEN) {
		snprintf(c->sha, sizeof(c->sha), "%s", sha);
		c->size = json_integer_value(json_object_get(j, "size"));
		c->state = CK_BUILT;
	} else {
		c->state = CK_DONE; /* uploaded, empty or failed */
	}
	json_decref(j);
}

static void ckpt_uploaded(void *arg, const struct tp_reply *rep)
{
	struct att *t = arg;
	struct ckpt *c = t->ckpt;

	c->call = NULL;
	if (rep->code == 0) {
		log_info("job=%s attempt=%lld checkpoint %.12s uploaded "
		         "(%lld bytes)",
		         t->job, (long long)t->attempt, c->sha,
		         (long long)c->size);
		ckpt_save_state(t, "uploaded");
		c->state = CK_DONE;
	} else if (conn_failed(t->a, rep, "checkpoint upload")) {
		c->state = CK_BUILT; /* again when the workspace is back */
		return;
	} else {
		log_error("job=%s attempt=%lld checkpoint refused: %s; "
		          "reported without it",
		          t->job, (long long)t->attempt, rep->err.msg);
		ckpt_save_state(t, "failed");
		c->state = CK_DONE;
	}
	att_poke_soon(t);
}

static void ckpt_upload(struct att *t)
{
	struct agent *a = t->a;
	struct ckpt *c = t->ckpt;
	char *path = xasprintf("%s/checkpoint-out.%s.tar.gz", t->dir, c->sha);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct err e = {0};
	int (*put)(struct transport *, const char *, int64_t, int, int64_t,
	           const char *, tp_done_fn, void *, struct tp_call **,
	           struct err *) = a->tp->checkpoint_put
	                               ? a->tp->checkpoint_put
	                               : transport_https.checkpoint_put;

	if (fd < 0) {
		log_error("job=%s: %s: %s; reported without a checkpoint",
		          t->job, path, strerror(errno));
		ckpt_save_state(t, "failed");
		c->state = CK_DONE;
		goto out;
	}
	if (put(a->t, t->job, t->attempt, fd, c->size, c->sha, ckpt_uploaded, t,
	        &c->call, &e) < 0) {
		log_error("job=%s checkpoint upload: %s", t->job, e.msg);
		goto out;
	}
	c->state = CK_UPLOADING;
	log_info("job=%s attempt=%lld uploading checkpoint %.12s (%lld "
	         "bytes)",
	         t->job, (long long)t->attempt, c->sha, (long long)c->size);
out:
	if (fd >= 0)
		close(fd);
	free(path);
}

void checkpoint_kick(struct att *t)
{
	struct ckpt *c;

	if (t->local || t->state != ATT_FINISHING)
		return;
	c = ckpt_get(t);
	if (c->state == CK_UNKNOWN)
		ckpt_decide(t);
	if (c->state == CK_BUILT && conn_usable(t->a) && !t->not_current)
		ckpt_upload(t);
}

bool checkpoint_done(struct att *t)
{
	return t->local || t->not_current ||
	       (t->ckpt != NULL && t->ckpt->state == CK_DONE);
}

void checkpoint_note_lease(struct att *t, json_t *job)
{
	json_t *c = json_object_get(job, "checkpoint");
	const char *id = json_string_value(json_object_get(c, "id"));
	char *path, *text;
	struct err e = {0};

	if (id == NULL || strlen(id) != SHA256_HEX_LEN ||
	    strspn(id, "0123456789abcdef") != SHA256_HEX_LEN)
		return;
	path = xasprintf("%s/%s", t->dir, CKPT_RESUME);
	text = json_dumps(c, JSON_COMPACT);
	if (mkdir_p(t->dir, 0700, &e) < 0 ||
	    file_write_atomic(path, text, strlen(text), 0600, &e) < 0)
		log_error("job=%s: resume pointer: %s", t->job, e.msg);
	free(text);
	free(path);
}

/* The download ended: check the sha256, rename, launch (or start over
 * from scratch when the checkpoint cannot be had). */
static void ckpt_fetched(void *arg, const struct tp_reply *rep)
{
	struct att *t = arg;
	struct agent *a = t->a;
	json_t *j = ckpt_load(t->dir, CKPT_RESUME);
	const char *id = json_string_value(json_object_get(j, "id"));
	char *part = xasprintf("%s/%s.part", t->dir, ATTEMPT_CHECKPOINT);
	char *final = attempt_path(t->dir, ATTEMPT_CHECKPOINT);
	char sha[SHA256_HEX_LEN + 1] = "";
	struct err e = {0};

	t->snap_call = NULL;
	if (rep->code < 0 && conn_failed(a, rep, "checkpoint download")) {
		unlink(part);
		t->preparing = false; /* retried by the next scheduling pass */
		goto out;
	}
	if (rep->code == 0 && id != NULL &&
	    sha256_file(part, sha, NULL, &e) == 0 && strcmp(sha, id) == 0 &&
	    rename(part, final) == 0) {
		log_info("job=%s attempt=%lld resumes from checkpoint %.12s",
		         t->job, (long long)t->attempt, id);
	} else {
		log_error("job=%s attempt=%lld: checkpoint %.12s not usable "
		          "(%s); the job starts from scratch",
		          t->job, (long long)t->attempt, id ? id : "?",
		          rep->code < 0 ? rep->err.msg : "sha256 mismatch");
		unlink(part);
		free(part);
		part = xasprintf("%s/%s", t->dir, CKPT_RESUME);
		unlink(part);
	}
	launch_start(a, t);
out:
	json_decref(j);
	free(part);
	free(final);
}

bool checkpoint_fetch(struct agent *a, struct att *t)
{
	char *final = attempt_path(t->dir, ATTEMPT_CHECKPOINT);
	char *part = xasprintf("%s/%s.part", t->dir, ATTEMPT_CHECKPOINT);
	json_t *j = NULL;
	const char *id;
	struct err e = {0};
	bool waiting = false;
	int fd;

	if (t->local || t->snap_call != NULL || access(final, F_OK) == 0 ||
	    (j = ckpt_load(t->dir, CKPT_RESUME)) == NULL ||
	    (id = json_string_value(json_object_get(j, "id"))) == NULL)
		goto out;
	waiting = true;
	if (!conn_usable(a))
		goto out; /* stays preparing; retried when the link is back */
	fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || a->tp->snapshot_get(a->t, id, fd, ckpt_fetched, t,
	                                  &t->snap_call, &e) < 0) {
		log_error("job=%s: checkpoint download: %s", t->job,
		          fd < 0 ? strerror(errno) : e.msg);
		waiting = false; /* start without it */
	}
	if (fd >= 0)
		close(fd);
out:
	json_decref(j);
	free(part);
	free(final);
	return waiting;
}
