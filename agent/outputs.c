/* outputs.c: upload the files the runner listed in result.json, one at a
 * time, each with its sha256.  Uploaded paths are recorded in agent.db, so
 * after a restart the upload resumes with the next file. */
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/metrics.h"

#include "common/attempt.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/log.h"
#include "common/util.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool outputs_uploaded(struct att *t, const char *path)
{
	sqlite3_stmt *st;
	bool found = false;

	if (sqlite3_prepare_v2(t->a->db,
	                       "SELECT 1 FROM uploaded WHERE job = ? AND "
	                       "attempt = ? AND path = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->attempt);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

static void outputs_record(struct att *t, const char *path)
{
	sqlite3_stmt *st;
	struct err e = {0};

	if (db_prepare(t->a->db,
	               "INSERT OR IGNORE INTO uploaded(job, attempt, path) "
	               "VALUES(?, ?, ?)",
	               &st, &e) < 0)
		return;
	sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->attempt);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	if (db_step_done(t->a->db, st, &e) < 0)
		log_error("job=%s: %s", t->job, e.msg);
}

static void outputs_finish(struct att *t)
{
	sqlite3_stmt *st;
	struct err e = {0};

	t->outputs_done = true;
	if (db_prepare(t->a->db,
	               "UPDATE attempts SET outputs_done = 1 WHERE job = ? AND "
	               "attempt = ?",
	               &st, &e) == 0) {
		sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, t->attempt);
		db_step_done(t->a->db, st, &e);
	}
}

static void outputs_reply(void *arg, const struct tp_reply *rep)
{
	struct att *t = arg;
	char *path = t->out_path;

	metrics_call_end(t->out_call, "outputs", rep->code == 0);
	t->out_call = NULL;
	t->out_path = NULL;
	if (rep->code == TERR_CONFLICT) {
		t->not_current = true;
		outputs_finish(t);
	} else if (rep->code < 0 && conn_failed(t->a, rep, "output upload")) {
		free(path);
		return;
	} else if (rep->code < 0) {
		log_error("job=%s output %s refused: %s", t->job, path,
		          rep->err.msg);
		outputs_record(t, path);
	} else {
		outputs_record(t, path);
	}
	free(path);
	att_poke_soon(t);
}

/* Open outputs/<path> for reading, never leaving the outputs directory
 * (no "..", no symlink anywhere on the way): a job controls that tree. */
static int outputs_open(struct att *t, const char *path)
{
	char *dir = xasprintf("%s/outputs", t->dir);
	struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW,
	                       .resolve = RESOLVE_BENEATH |
	                                  RESOLVE_NO_SYMLINKS |
	                                  RESOLVE_NO_MAGICLINKS};
	int dfd, fd = -1;

	if (!path_is_safe_relative(path))
		goto out;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		goto out;
	fd = (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
	close(dfd);
out:
	free(dir);
	return fd;
}

/* Start the upload of one output; false when there was nothing to send. */
static bool outputs_send(struct att *t, const char *path, const char *sha)
{
	struct agent *a = t->a;
	struct err e = {0};
	struct stat sb;
	int fd = outputs_open(t, path);
	bool started = false;

	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		log_warn("job=%s output %s: not a regular file; skipped",
		         t->job, path);
		outputs_record(t, path);
		goto out;
	}
	t->out_path = xstrdup(path);
	if (a->tp->output_put(a->t, t->job, t->attempt, path, fd, sb.st_size,
	                      sha, outputs_reply, t, &t->out_call, &e) < 0) {
		log_error("job=%s output %s: %s", t->job, path, e.msg);
		free(t->out_path);
		t->out_path = NULL;
		goto out;
	}
	metrics_call_start(t->out_call);
	started = true;
out:
	if (fd >= 0)
		close(fd);
	return started;
}

void outputs_kick(struct att *t)
{
	json_t *res = NULL, *item;
	size_t i;

	if (t->local || t->outputs_done || t->out_call != NULL ||
	    !conn_usable(t->a))
		goto out;
	if (t->outputs_none) {
		log_info("job=%s attempt=%lld: a rank other than 0 of a job "
		         "that keeps rank 0's outputs: none uploaded",
		         t->job, (long long)t->attempt);
		outputs_finish(t);
		goto out;
	}
	if (attempt_result_read(t->dir, &res, NULL) < 0) {
		outputs_finish(t); /* no result: nothing to upload */
		goto out;
	}
	json_array_foreach(json_object_get(res, "outputs"), i, item)
	{
		const char *p =
		    json_string_value(json_object_get(item, "path"));
		const char *sha =
		    json_string_value(json_object_get(item, "sha256"));
		if (p == NULL || sha == NULL || outputs_uploaded(t, p))
			continue;
		if (outputs_send(t, p, sha))
			goto out;
	}
	outputs_finish(t);
out:
	json_decref(res);
}
