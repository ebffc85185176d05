/* logs.c: attempt logs: append at an offset (agent) and read from an
 * offset with an optional long-poll (admin).  The bytes live in one
 * append-only file per attempt, logs/<job>/<attempt> beside the database
 * (docs/performance.md F5); attempts.log_length in the database is the
 * acknowledged length.  An append writes the new bytes after the first
 * log_length bytes of the file as the body arrives (in place: bytes past
 * it, left by a crash or a broken request, are the agent's same bytes
 * from an append that was not acknowledged), fdatasyncs the file once and
 * then commits the new length: an acknowledged length is never lost and
 * never counts a byte twice.  Readers read the file without store_lock, up
 * to the acknowledged length plus what an append in flight has written so
 * far (the agent's log at those offsets never changes, so a failed append
 * showed nothing but what the agent sends again).  Logs of a database from
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
/* Seconds an append's connection may go without a byte before it is
 * dropped (and its attempt free for the next append).  An agent killed
 * mid-body whose connection is not seen closed (a tunnel's far end, a
 * lost peer) would otherwise keep the attempt busy for the listener's
 * 120 s idle timeout while the new agent is refused with 503.  A live
 * upload streams its body; it never pauses this long. */
#define LOG_APPEND_IDLE_S 10

/* How often an append in flight wakes its job's log readers (ms): they
 * read its bytes as they reach the file, not only at its commit. */
#define LOG_SHOW_MS 50

/* Appends to one attempt's log run one at a time: an append marks its
 * attempt busy from its pre-check to its end, and one that comes while
 * another is in flight is answered 503 (busy; the agent retries).  The
 * bytes are written as they arrive and fdatasynced once, outside
 * store_lock. */
struct log_up {
	struct log_up *next;
	int64_t job, att;
	int64_t len;      /* acknowledged length when the append began */
	int64_t skip;     /* body bytes the workspace already holds */
	int64_t n;        /* new bytes written (read by readers: atomic) */
	int64_t shown_ms; /* when readers were last woken for them */
	int fd;
	bool live; /* len is set: readers may read past it (busy_mu) */
	bool failed;
};

static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log_up *busy;

/* The append is over (before its reply goes out: the agent's next one may
 * come before this request's end is seen). */
static void log_up_end(struct log_up *u)
{
	struct log_up **pp;

	pthread_mutex_lock(&busy_mu);
	for (pp = &busy; *pp != NULL; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	pthread_mutex_unlock(&busy_mu);
}

/* How long the request's connection may go without a byte (none for a
 * request without one: tests/fuzz/fuzz_ws_log.c). */
static void log_conn_idle(struct req *r, unsigned s)
{
	if (r->conn != NULL)
		MHD_set_connection_option(r->conn,
		                          MHD_CONNECTION_OPTION_TIMEOUT, s);
}

/* Bytes past the acknowledged length len of an attempt's log that an
 * append in flight has written to its file (0: none in flight, or it
 * began at another length: committed since). */
static int64_t log_in_flight(int64_t job, int64_t att, int64_t len)
{
	struct log_up *u;
	int64_t n = 0;

	pthread_mutex_lock(&busy_mu);
	for (u = busy; u != NULL; u = u->next)
		if (u->job == job && u->att == att) {
			if (u->live && !u->failed && u->len == len)
				n = __atomic_load_n(&u->n, __ATOMIC_ACQUIRE);
			break;
		}
	pthread_mutex_unlock(&busy_mu);
	return n;
}

static void log_up_free(struct req *r)
{
	struct log_up *u = r->state;

	/* the connection may carry other requests: the listener's timeout */
	log_conn_idle(r, HTTPD_IDLE_S);
	log_up_end(u);
	if (u->fd >= 0)
		close(u->fd);
	free(u);
	r->state = NULL;
	r->state_free = NULL;
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
 * len (written in place with pwrite: what lies past len was written by an
 * append never acknowledged, the same bytes, and a reader may be sending
 * them), and bring over from log_chunks what the file lacks below len.
 * -1 on error. */
static int open_for_append(struct ws *ws, int64_t job, int64_t att, int64_t len)
{
	char *dir = log_path(ws, job, 0), *path = log_path(ws, job, att);
	struct stat sb;
	struct buf b;
	int fd = -1;
	bool created = false;

	if (mkdir_p(dir, 0700, NULL) < 0)
		goto out;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		created = true;
	}
	if (fd < 0 || fstat(fd, &sb) < 0)
		goto fail;
	if (sb.st_size < len) {
		buf_init(&b, (size_t)(len - sb.st_size) + 1);
		store_lock(ws);
		read_chunks(ws, job, att, sb.st_size, len, &b);
		store_unlock(ws);
		if ((int64_t)b.len != len - sb.st_size ||
		    fd_pwrite_all(fd, b.data, b.len, sb.st_size, NULL) < 0) {
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
	if (created) {
		/* the file's entry in logs/<job>, <job>'s in logs, and
		 * logs' own (made once) in the workspace dir */
		char *logs = xasprintf("%s/logs", ws->dir);
		int r = dir_fsync(dir, NULL) < 0 || dir_fsync(logs, NULL) < 0 ||
		                dir_fsync(ws->dir, NULL) < 0
		            ? -1
		            : 0;

		free(logs);
		if (r < 0)
			goto fail;
	}
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

/* Before the body: the attempt is this agent's, the offset is not past
 * the acknowledged length, no other append to it is in flight. */
static int log_append_pre(struct req *r)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	struct log_up *u, *o;
	int64_t job, att, off, len = -1;
	bool mine = false;

	if (req_seg_id(r, 1, &job) < 0 || req_seg_id(r, 2, &att) < 0)
		return r->status;
	if (req_arg(r, "offset") == NULL || *req_arg(r, "offset") == '\0')
		return reply_error(r, 400, "invalid", "offset",
		                   "offset: required query argument");
	if (req_arg_i64(r, "offset", 0, INT64_MAX, 0, &off) < 0)
		return r->status;
	u = xcalloc(1, sizeof(*u));
	u->job = job;
	u->att = att;
	u->fd = -1;
	pthread_mutex_lock(&busy_mu);
	for (o = busy; o != NULL; o = o->next)
		if (o->job == job && o->att == att)
			break;
	if (o == NULL) {
		u->next = busy;
		busy = u;
	}
	pthread_mutex_unlock(&busy_mu);
	if (o != NULL) {
		free(u);
		return reply_error(r, 503, "busy", NULL,
		                   "another append to this log is in flight: "
		                   "retry");
	}
	r->state = u;
	r->state_free = log_up_free;
	log_conn_idle(r, LOG_APPEND_IDLE_S);
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
	if (len < 0 || !mine || off > len)
		log_up_end(u);
	if (len < 0 || !mine)
		return reply_attempt_error(r, TERR_NOTFOUND, job, att);
	if (off > len)
		return reply_json(
		    r, 416,
		    json_pack("{s:{s:s,s:s},s:I}", "error", "code", "gap",
		              "message",
		              "offset is past the stored length: resend from "
		              "'length'",
		              "length", (json_int_t)len));
	u->skip = len - off;
	pthread_mutex_lock(&busy_mu);
	u->len = len;
	u->live = true;
	pthread_mutex_unlock(&busy_mu);
	return 0;
}

/* One piece of the body: the bytes past what the workspace holds go to
 * the file now, after the acknowledged length and the bytes before them;
 * the job's readers are woken for them at most every LOG_SHOW_MS.  A
 * failure is answered at the end. */
static int log_append_sink(struct req *r, const char *data, size_t n)
{
	struct log_up *u = r->state;
	struct err e = {0};

	if (u == NULL || u->failed)
		return 0;
	if (u->skip > 0) {
		size_t k = (int64_t)n < u->skip ? n : (size_t)u->skip;
		data += k;
		n -= k;
		u->skip -= (int64_t)k;
	}
	if (n == 0)
		return 0;
	if (u->fd < 0 &&
	    (u->fd = open_for_append(r->ws, u->job, u->att, u->len)) < 0) {
		pthread_mutex_lock(&busy_mu);
		u->failed = true;
		pthread_mutex_unlock(&busy_mu);
		return 0;
	}
	if (fd_pwrite_all(u->fd, data, n, u->len + u->n, &e) < 0) {
		log_error("job=%lld attempt=%lld: %s", (long long)u->job,
		          (long long)u->att, e.msg);
		pthread_mutex_lock(&busy_mu);
		u->failed = true;
		pthread_mutex_unlock(&busy_mu);
		return 0;
	}
	__atomic_store_n(&u->n, u->n + (int64_t)n, __ATOMIC_RELEASE);
	if (now_mono_ms() - u->shown_ms >= LOG_SHOW_MS) {
		u->shown_ms = now_mono_ms();
		ws_notify_job(r->ws, u->job);
	}
	return 0;
}

/* The whole body is in the file: one fdatasync, then the new length. */
static int log_append(struct req *r)
{
	struct ws *ws = r->ws;
	struct log_up *u = r->state;
	sqlite3_stmt *st;
	int64_t len;
	bool ok;

	if (u == NULL)
		return reply_internal(r, "cannot store log bytes");
	if (u->failed) {
		log_up_end(u);
		return reply_internal(r, "cannot store log bytes");
	}
	len = u->len;
	if (u->n == 0) {
		log_up_end(u);
		return reply_json(
		    r, 200, json_pack("{s:I}", "length", (json_int_t)len));
	}
	ok = fdatasync(u->fd) == 0;
	store_lock(ws);
	ok = ok && store_begin(ws) == 0;
	st = store_prep(ws, "UPDATE attempts SET log_length = ? WHERE job "
	                    "= ? AND attempt = ? AND log_length = ?");
	sqlite3_bind_int64(st, 1, len + u->n);
	sqlite3_bind_int64(st, 2, u->job);
	sqlite3_bind_int64(st, 3, u->att);
	sqlite3_bind_int64(st, 4, len);
	ok = ok && sqlite3_step(st) == SQLITE_DONE &&
	     sqlite3_changes(ws->db) == 1;
	store_done(st);
	/* the file holds them now (a database from before the files) */
	st = store_prep(ws, "DELETE FROM log_chunks WHERE job = ? AND "
	                    "attempt = ?");
	sqlite3_bind_int64(st, 1, u->job);
	sqlite3_bind_int64(st, 2, u->att);
	ok = ok && sqlite3_step(st) == SQLITE_DONE;
	store_done(st);
	if (!ok || store_commit(ws) < 0) {
		store_rollback(ws);
		store_unlock(ws);
		log_up_end(u);
		return reply_internal(r, "cannot store log bytes");
	}
	store_unlock(ws);
	/* committed: the attempt's next append may begin (before this reply
	 * goes out: the agent's next request may come before this one's end
	 * is seen) */
	log_up_end(u);
	len += u->n;
	ws_notify_job(ws, u->job);
	return reply_json(r, 200,
	                  json_pack("{s:I}", "length", (json_int_t)len));
}

struct log_view {
	bool job_found, att_found, terminal;
	int64_t att, final_len;
	int64_t len;   /* readable: acknowledged + an append's in flight */
	int64_t nodes; /* the job's spec's (1 by default) */
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

/* Rank `rank` of the gang of attempt v->att (docs/multi-node.md): rank r
 * of the gang whose rank 0 is attempt g is attempt g + r.  An attempt that
 * does not exist stays as asked (404 later). */
static void look_rank(struct ws *ws, int64_t job, int64_t rank,
                      struct log_view *v)
{
	sqlite3_stmt *st = store_prep(ws, "SELECT rank FROM attempts WHERE "
	                                  "job = ? AND attempt = ?");

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, v->att);
	if (sqlite3_step(st) == SQLITE_ROW)
		v->att = v->att - sqlite3_column_int64(st, 0) + rank;
	store_done(st);
}

/* rank < 0: the attempt asked for (default: the job's, its gang's rank 0);
 * else rank `rank` of that attempt's gang. */
static void look(struct ws *ws, int64_t job, int64_t want, int64_t rank,
                 struct log_view *v)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT attempt, state, coalesce(json_extract(spec, "
	                   "'$.nodes'), 1) FROM jobs WHERE id = ?");

	memset(v, 0, sizeof(*v));
	v->final_len = -1;
	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v->job_found = true;
		v->att = want > 0 ? want : sqlite3_column_int64(st, 0);
		v->terminal = sched_reason_terminal(
		    (const char *)sqlite3_column_text(st, 1));
		v->nodes = sqlite3_column_int64(st, 2);
	}
	store_done(st);
	if (!v->job_found || v->att == 0 || (rank >= 0 && rank >= v->nodes))
		return;
	if (rank >= 0)
		look_rank(ws, job, rank, v);
	st =
	    store_prep(ws, "SELECT log_length, state FROM attempts WHERE job = "
	                   "? AND attempt = ?");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, v->att);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v->att_found = true;
		v->len = sqlite3_column_int64(st, 0);
		v->len += log_in_flight(job, v->att, v->len);
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

/* Reply with bytes [off, len) of the attempt's log, at most LOG_READ_MAX;
 * called with store_lock held, which it lets go before the bytes are read:
 * they come straight from the file (sendfile on the plain listener), where
 * the acknowledged bytes are before the length that says so is committed,
 * an append's before it counts them, and no append ever cuts the file.  A log
 * of a database from before the files, still in log_chunks, is read under the
 * lock. */
static int send_log(struct req *r, int64_t job, struct log_view *v, int64_t off)
{
	struct buf b;
	char num[32];
	int64_t end = v->len, sent = 0;
	int fd = -1;

	buf_init(&b, LOG_READ_MAX + 1);
	if (end - off > LOG_READ_MAX)
		end = off + LOG_READ_MAX;
	if (off < end) {
		char *path = log_path(r->ws, job, v->att);
		struct stat sb;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		free(path);
		if (fd >= 0 && (fstat(fd, &sb) < 0 || sb.st_size < end)) {
			close(fd);
			fd = -1;
		}
		if (fd < 0)
			read_chunks(r->ws, job, v->att, off, end, &b);
	}
	store_unlock(r->ws);
	if (fd >= 0) {
		reply_fd_at(r, 200, fd, off, end - off);
		sent = end - off;
	} else {
		reply_bytes(r, 200, b.data ? b.data : "", b.len,
		            "application/octet-stream");
		sent = (int64_t)b.len;
	}
	snprintf(num, sizeof(num), "%lld", (long long)v->len);
	reply_header(r, "Tether-Log-Length", num);
	snprintf(num, sizeof(num), "%lld", (long long)v->att);
	reply_header(r, "Tether-Attempt", num);
	if (v->final_len >= 0) {
		snprintf(num, sizeof(num), "%lld", (long long)v->final_len);
		reply_header(r, "Tether-Log-Final-Length", num);
	}
	if (log_complete(v->terminal, v->len, v->final_len) &&
	    off + sent >= v->len)
		reply_header(r, "Tether-Log-Complete", "1");
	buf_free(&b);
	return 200;
}

static int log_read(struct req *r)
{
	struct ws *ws = r->ws;
	struct log_view v;
	int64_t job, att, off, wait, rank;

	if (req_seg_id(r, 1, &job) < 0 ||
	    req_arg_i64(r, "attempt", 1, INT64_MAX, 0, &att) < 0 ||
	    req_arg_i64(r, "rank", 0, INT64_MAX, -1, &rank) < 0 ||
	    req_arg_i64(r, "offset", 0, INT64_MAX, 0, &off) < 0 ||
	    req_arg_i64(r, "wait", 0, 60, 0, &wait) < 0)
		return r->status;
	if (!wait_first(r, wait * 1000))
		__atomic_add_fetch(&ws->log_wakeups, 1, __ATOMIC_RELAXED);
	r->wait_kind = WAIT_LOG;
	r->wait_job = job;
	for (;;) {
		wait_mark(r);
		store_lock(ws);
		look(ws, job, att, rank, &v);
		if (v.job_found && rank >= v.nodes) {
			store_unlock(ws);
			return reply_error(r, 400, "invalid", "rank",
			                   "rank: job %lld has %lld node%s "
			                   "(ranks 0 to %lld)",
			                   (long long)job, (long long)v.nodes,
			                   v.nodes == 1 ? "" : "s",
			                   (long long)v.nodes - 1);
		}
		if (!v.job_found ||
		    ((att > 0 || rank > 0) && v.att > 0 && !v.att_found)) {
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
    {"POST", "attempts/*/*/log", AUTH_AGENT, BODY_SINK,
     offsetof(struct ws_conf, max_log_chunk), log_append, log_append_pre,
     log_append_sink},
    {"GET", "jobs/*/log", AUTH_ADMIN, BODY_NONE, 0, log_read},
    {NULL, NULL, 0, 0, 0, NULL},
};
