/* logs.c: attempt logs: append at an offset (agent) and read from an
 * offset with an optional long-poll (admin).  The bytes live in one
 * append-only file per attempt, logs/<job>/<attempt> beside the database
 * (docs/performance.md F5); attempts.log_length in the database is the
 * acknowledged length.  An append writes the new bytes after the first
 * log_length bytes of the file (bytes past it, written before a crash
 * took the commit, are cut first), fdatasyncs the file and then commits
 * the new length: an acknowledged length is never lost and never counts
 * a byte twice, and readers never read past it.  Logs of a database from
 * before the files (rows of log_chunks) stay readable and move into the
 * attempt's file at its next append.  A log is complete when its attempt
 * has ended and the workspace holds as many bytes as the final event's
 * log_length (when the final event gave one): an ended job whose log is
 * still arriving is never called complete. */
#include "workspace/server/http.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_READ_MAX (8 << 20)
#define LOG_STRIPES  64

/* Appends to one attempt's log run one at a time (a stripe of locks, so
 * that the write and fdatasync run outside store_lock). */
static pthread_mutex_t stripes[LOG_STRIPES] = {[0 ... LOG_STRIPES - 1] =
                                                   PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *stripe(int64_t job, int64_t att)
{
	return &stripes[(uint64_t)(job * 31 + att) % LOG_STRIPES];
}

char *log_path(struct ws *ws, int64_t job, int64_t att)
{
	return att > 0 ? xasprintf("%s/logs/%lld/%lld", ws->dir, (long long)job,
	                           (long long)att)
	               : xasprintf("%s/logs/%lld", ws->dir, (long long)job);
}

/* Bytes [off, end) of an attempt's log still in log_chunks (a database
 * from before the log files) into b; db locked. */
static void read_chunks(struct ws *ws, int64_t job, int64_t att, int64_t off,
                        int64_t end, struct buf *b)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT offset, data FROM log_chunks WHERE job = ?1 AND "
	        "attempt = ?2 AND offset + length(data) > ?3 AND offset < ?4 "
	        "ORDER BY offset");

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_int64(st, 3, off);
	sqlite3_bind_int64(st, 4, end);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t co = sqlite3_column_int64(st, 0);
		const char *d = sqlite3_column_blob(st, 1);
		int64_t n = sqlite3_column_bytes(st, 1);
		int64_t from = off > co ? off - co : 0;
		int64_t to = end < co + n ? end - co : n;
		if (to > from)
			buf_append(b, d + from, (size_t)(to - from), NULL);
	}
	store_done(st);
}

/* Open (creating) the attempt's log file for an append of the bytes after
 * len: cut what lies past len (written, never acknowledged), and bring
 * over from log_chunks what the file lacks below len.  -1 on error. */
static int open_for_append(struct ws *ws, int64_t job, int64_t att, int64_t len)
{
	char *dir = log_path(ws, job, 0), *path = log_path(ws, job, att);
	struct stat sb;
	struct buf b;
	int fd = -1;
	bool created = false;

	if (mkdir_p(dir, 0700, NULL) < 0)
		goto out;
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd =
		    open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		created = true;
	}
	if (fd < 0 || fstat(fd, &sb) < 0)
		goto fail;
	if (sb.st_size > len && ftruncate(fd, len) < 0)
		goto fail;
	if (sb.st_size < len) {
		buf_init(&b, (size_t)(len - sb.st_size) + 1);
		store_lock(ws);
		read_chunks(ws, job, att, sb.st_size, len, &b);
		store_unlock(ws);
		if ((int64_t)b.len != len - sb.st_size ||
		    fd_write_all(fd, b.data, b.len, NULL) < 0) {
			log_error("job=%lld attempt=%lld: the log's first %lld "
			          "bytes are neither in its file nor in the "
			          "database",
			          (long long)job, (long long)att,
			          (long long)len);
			buf_free(&b);
			goto fail;
		}
		buf_free(&b);
	}
	if (created &&
	    (dir_fsync(dir, NULL) < 0 || dir_fsync(ws->dir, NULL) < 0))
		goto fail;
	goto out;
fail:
	log_error("log file %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	fd = -1;
out:
	free(dir);
	free(path);
	return fd;
}

static int log_append(struct req *r)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	int64_t job, att, off, len = -1, skip;
	bool mine = false;
	pthread_mutex_t *mu;
	int fd, ok;

	if (req_seg_id(r, 1, &job) < 0 || req_seg_id(r, 2, &att) < 0)
		return r->status;
	if (req_arg(r, "offset") == NULL || *req_arg(r, "offset") == '\0')
		return reply_error(r, 400, "invalid", "offset",
		                   "offset: required query argument");
	if (req_arg_i64(r, "offset", 0, INT64_MAX, 0, &off) < 0)
		return r->status;
	mu = stripe(job, att);
	pthread_mutex_lock(mu);
	store_lock(ws);
	st = store_prep(ws, "SELECT log_length, agent_id = ? FROM attempts "
	                    "WHERE job = ? AND attempt = ?");
	sqlite3_bind_text(st, 1, r->agent_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, job);
	sqlite3_bind_int64(st, 3, att);
	if (sqlite3_step(st) == SQLITE_ROW) {
		len = sqlite3_column_int64(st, 0);
		mine = sqlite3_column_int(st, 1) != 0;
	}
	store_done(st);
	store_unlock(ws);
	if (len < 0 || !mine) {
		pthread_mutex_unlock(mu);
		return reply_attempt_error(r, TERR_NOTFOUND, job, att);
	}
	if (off > len) {
		pthread_mutex_unlock(mu);
		return reply_json(
		    r, 416,
		    json_pack("{s:{s:s,s:s},s:I}", "error", "code", "gap",
		              "message",
		              "offset is past the stored length: resend from "
		              "'length'",
		              "length", (json_int_t)len));
	}
	skip = len - off;
	if (skip >= (int64_t)r->body.len) {
		pthread_mutex_unlock(mu);
		return reply_json(
		    r, 200, json_pack("{s:I}", "length", (json_int_t)len));
	}
	size_t n = r->body.len - (size_t)skip;
	fd = open_for_append(ws, job, att, len);
	ok = fd >= 0 && fd_write_all(fd, r->body.data + skip, n, NULL) == 0 &&
	     fdatasync(fd) == 0;
	if (fd >= 0)
		close(fd);
	store_lock(ws);
	ok = ok && store_begin(ws) == 0;
	st = store_prep(ws, "UPDATE attempts SET log_length = ? WHERE job "
	                    "= ? AND attempt = ? AND log_length = ?");
	sqlite3_bind_int64(st, 1, len + (int64_t)n);
	sqlite3_bind_int64(st, 2, job);
	sqlite3_bind_int64(st, 3, att);
	sqlite3_bind_int64(st, 4, len);
	ok = ok && sqlite3_step(st) == SQLITE_DONE &&
	     sqlite3_changes(ws->db) == 1;
	store_done(st);
	/* the file holds them now (a database from before the files) */
	st = store_prep(ws, "DELETE FROM log_chunks WHERE job = ? AND "
	                    "attempt = ?");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	ok = ok && sqlite3_step(st) == SQLITE_DONE;
	store_done(st);
	if (!ok || store_commit(ws) < 0) {
		store_rollback(ws);
		store_unlock(ws);
		pthread_mutex_unlock(mu);
		return reply_internal(r, "cannot store log bytes");
	}
	store_unlock(ws);
	pthread_mutex_unlock(mu);
	len += (int64_t)n;
	ws_notify_job(ws, job);
	return reply_json(r, 200,
	                  json_pack("{s:I}", "length", (json_int_t)len));
}

/* Bytes [off, end) of an attempt's log into b: from its file, or from
 * log_chunks while the file lacks them (a database from before the
 * files); db locked. */
static void read_bytes(struct ws *ws, int64_t job, int64_t att, int64_t off,
                       int64_t end, struct buf *b)
{
	char *path = log_path(ws, job, att);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;

	free(path);
	if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size >= end) {
		char *tmp = xcalloc(1, (size_t)(end - off) + 1);
		int64_t at = off;
		while (at < end) {
			ssize_t k =
			    pread(fd, tmp + (at - off), (size_t)(end - at), at);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			at += k;
		}
		close(fd);
		if (at == end)
			buf_append(b, tmp, (size_t)(end - off), NULL);
		free(tmp);
		if (at == end)
			return;
	} else if (fd >= 0) {
		close(fd);
	}
	read_chunks(ws, job, att, off, end, b);
}

struct log_view {
	bool job_found, att_found, terminal;
	int64_t att, len, final_len;
};

int64_t log_final_length(struct ws *ws, int64_t job, int64_t att)
{
	/* a log past log_retention is deleted (retention.c): nothing more
	 * is coming, so its final length no longer applies */
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT json_extract(body, '$.log_length') FROM events WHERE "
	        "job = ?1 AND attempt = ?2 AND json_extract(body, '$.type') = "
	        "'final' AND NOT EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND "
	        "ended_at IS NOT NULL AND ended_at < ?3) ORDER BY seq LIMIT 1");
	int64_t n = -1;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_double(
	    st, 3, ws_now() - (double)ws->conf.log_retention_ms / 1000.0);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) == SQLITE_INTEGER)
		n = sqlite3_column_int64(st, 0);
	store_done(st);
	return n;
}

bool log_complete(bool terminal, int64_t len, int64_t final_len)
{
	return terminal && (final_len < 0 || len >= final_len);
}

static void look(struct ws *ws, int64_t job, int64_t want, struct log_view *v)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT attempt, state FROM jobs WHERE "
	                   "id = ?");

	memset(v, 0, sizeof(*v));
	v->final_len = -1;
	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v->job_found = true;
		v->att = want > 0 ? want : sqlite3_column_int64(st, 0);
		v->terminal = sched_reason_terminal(
		    (const char *)sqlite3_column_text(st, 1));
	}
	store_done(st);
	if (!v->job_found || v->att == 0)
		return;
	st =
	    store_prep(ws, "SELECT log_length, state FROM attempts WHERE job = "
	                   "? AND attempt = ?");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, v->att);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v->att_found = true;
		v->len = sqlite3_column_int64(st, 0);
		v->terminal = !(strcmp((const char *)sqlite3_column_text(st, 1),
		                       "assigned") == 0 ||
		                strcmp((const char *)sqlite3_column_text(st, 1),
		                       "running") == 0 ||
		                strcmp((const char *)sqlite3_column_text(st, 1),
		                       "cancelling") == 0);
	}
	store_done(st);
	if (v->att_found && v->terminal)
		v->final_len = log_final_length(ws, job, v->att);
}

static int send_log(struct req *r, int64_t job, struct log_view *v, int64_t off)
{
	struct buf b;
	char num[32];
	int64_t end = v->len;

	buf_init(&b, LOG_READ_MAX + 1);
	if (end - off > LOG_READ_MAX)
		end = off + LOG_READ_MAX;
	if (off < end)
		read_bytes(r->ws, job, v->att, off, end, &b);
	store_unlock(r->ws);
	reply_bytes(r, 200, b.data ? b.data : "", b.len,
	            "application/octet-stream");
	snprintf(num, sizeof(num), "%lld", (long long)v->len);
	reply_header(r, "Tether-Log-Length", num);
	snprintf(num, sizeof(num), "%lld", (long long)v->att);
	reply_header(r, "Tether-Attempt", num);
	if (v->final_len >= 0) {
		snprintf(num, sizeof(num), "%lld", (long long)v->final_len);
		reply_header(r, "Tether-Log-Final-Length", num);
	}
	if (log_complete(v->terminal, v->len, v->final_len) &&
	    off + (int64_t)b.len >= v->len)
		reply_header(r, "Tether-Log-Complete", "1");
	buf_free(&b);
	return 200;
}

static int log_read(struct req *r)
{
	struct ws *ws = r->ws;
	struct log_view v;
	int64_t job, att, off, wait;

	if (req_seg_id(r, 1, &job) < 0 ||
	    req_arg_i64(r, "attempt", 1, INT64_MAX, 0, &att) < 0 ||
	    req_arg_i64(r, "offset", 0, INT64_MAX, 0, &off) < 0 ||
	    req_arg_i64(r, "wait", 0, 60, 0, &wait) < 0)
		return r->status;
	if (r->deadline_ms == 0) {
		int64_t ms = wait * 1000;
		if (ms > ws->conf.poll_max_wait_ms)
			ms = ws->conf.poll_max_wait_ms;
		r->deadline_ms = now_mono_ms() + ms;
	} else {
		__atomic_add_fetch(&ws->log_wakeups, 1, __ATOMIC_RELAXED);
	}
	r->wait_kind = WAIT_LOG;
	r->wait_job = job;
	for (;;) {
		wait_mark(r);
		store_lock(ws);
		look(ws, job, att, &v);
		if (!v.job_found || (att > 0 && !v.att_found)) {
			store_unlock(ws);
			return reply_error(r, 404, "not_found", NULL,
			                   "no job %lld%s", (long long)job,
			                   v.job_found ? " attempt" : "");
		}
		if (off < v.len ||
		    log_complete(v.terminal, v.len, v.final_len) ||
		    now_mono_ms() >= r->deadline_ms || ws->stopping)
			return send_log(r, job, &v, off);
		store_unlock(ws);
		if (wait_park(r))
			return REQ_SUSPENDED;
	}
}

const struct route routes_logs[] = {
    {"POST", "attempts/*/*/log", AUTH_AGENT, BODY_MEM,
     offsetof(struct ws_conf, max_log_chunk), log_append},
    {"GET", "jobs/*/log", AUTH_ADMIN, BODY_NONE, 0, log_read},
    {NULL, NULL, 0, 0, 0, NULL},
};
