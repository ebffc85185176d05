/* shipper.c: ship an attempt's log file to the workspace by offset.
 *
 * The log file is the source of truth and only grows; log_acked (durable in
 * agent.db) is what the workspace has confirmed.  Each kick uploads the next
 * chunk from log_acked; the reply's length becomes the new log_acked, and a
 * 416 (gap) resyncs to the server's length, so retries, outages and restarts
 * neither lose nor duplicate a byte.  One upload per attempt is in flight;
 * attempts ship independently on the shared curl multi handle. */
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/metrics.h"

#include "common/attempt.h"
#include "common/log.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int64_t shipper_log_size(struct att *t)
{
	char *path = attempt_path(t->dir, ATTEMPT_LOG);
	struct stat sb;
	int64_t size = stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;

	free(path);
	return size;
}

bool shipper_done(struct att *t)
{
	return t->local || shipper_log_size(t) <= t->log_acked;
}

static void shipper_store(struct att *t, int64_t acked)
{
	struct agent *a = t->a;
	sqlite3_stmt *st;
	struct err e = {0};

	if (db_prepare(a->db,
	               "UPDATE attempts SET log_acked = ? WHERE job = ? AND "
	               "attempt = ?",
	               &st, &e) == 0) {
		sqlite3_bind_int64(st, 1, acked);
		sqlite3_bind_text(st, 2, t->job, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, t->attempt);
		/* not synced: a resent upload is taken by its offset */
		db_step_relaxed(a->db, st, t->job);
	}
	if (acked > t->log_acked)
		metrics_add(M_LOG_BYTES_SHIPPED, NULL,
		            (double)(acked - t->log_acked));
	t->log_acked = acked;
}

static void shipper_reply(void *arg, const struct tp_reply *rep)
{
	struct att *t = arg;
	json_t *len = json_object_get(rep->json, "length");

	metrics_call_end(t->log_call, "log",
	                 rep->code == 0 || rep->code == TERR_GAP);
	t->log_call = NULL;
	if (rep->code == 0 || rep->code == TERR_GAP) {
		if (!json_is_integer(len)) {
			log_error("job=%s log upload: reply without length",
			          t->job);
			return;
		}
		if (rep->code == TERR_GAP)
			log_warn("job=%s attempt=%lld log gap: workspace has "
			         "%lld bytes, resending from there",
			         t->job, (long long)t->attempt,
			         (long long)json_integer_value(len));
		shipper_store(t, json_integer_value(len));
		att_poke_soon(t);
		return;
	}
	if (conn_failed(t->a, rep, "log upload"))
		return;
	log_error("job=%s attempt=%lld log upload refused: %s; giving up on "
	          "this log",
	          t->job, (long long)t->attempt, rep->err.msg);
	shipper_store(t, shipper_log_size(t));
	att_poke_soon(t);
}

void shipper_kick(struct att *t)
{
	struct agent *a = t->a;
	int64_t size, len;
	struct err e = {0};
	char *path;
	int fd;

	if (t->local || t->log_call != NULL || !conn_usable(a))
		return;
	size = shipper_log_size(t);
	if (size <= t->log_acked)
		return;
	len = size - t->log_acked;
	if (len > a->conf.log_chunk)
		len = a->conf.log_chunk;
	path = attempt_path(t->dir, ATTEMPT_LOG);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0) {
		log_warn_errno("job=%s: open log", t->job);
		return;
	}
	if (a->tp->log_append(a->t, t->job, t->attempt, fd, t->log_acked, len,
	                      shipper_reply, t, &t->log_call, &e) < 0)
		log_error("job=%s log upload: %s", t->job, e.msg);
	metrics_call_start(t->log_call);
	close(fd);
}
