/* api-attempt.c: what an agent reports about an attempt: status events
 * (idempotent by seq) and output files (sha256-checked).  Both are refused
 * with 409 once the attempt is not current (fencing). */
#include "workspace/server/http.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EVENTS     1000
#define GANG_MAX_NODES 256 /* jobspec-nodes.c */

/* Reasons are lowercase words (docs/protocol.md); new ones may come. */
static int check_reason(const char *w, const char *s, struct err *e)
{
	if (*s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz_") == strlen(s))
		return 0;
	return err_set(e, TERR_INVAL,
	               "%s.reason: a reason is a lowercase word (a-z, _)", w);
}

/* A rank at the start barrier (docs/multi-node.md): its node's address
 * (an IP literal) and a free port there (rank 0's is the master's). */
static int check_ready(json_t *ev, const char *w, struct err *e)
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *addr;
	int64_t port;
	int r;

	if ((r = json_get_str(ev, w, "address", true, 64, &addr, e)) < 0 ||
	    (r = json_get_int(ev, w, "port", true, 1, 65535, &port, e)) < 0)
		return r;
	if (inet_pton(AF_INET, addr, buf) != 1 &&
	    inet_pton(AF_INET6, addr, buf) != 1) {
		char f[48];
		snprintf(f, sizeof(f), "%s.address", w);
		return err_set_field(e, TERR_INVAL, f, "%s: not an IP address",
		                     f);
	}
	return 0;
}

static int check_event(json_t *ev, size_t i, struct err *e)
{
	char w[32];
	const char *s;
	int64_t n;
	double d;
	int r;

	snprintf(w, sizeof(w), "events[%zu]", i);
	if (!json_is_object(ev))
		return err_set(e, TERR_INVAL, "%s: expected an object", w);
	if ((r = json_get_int(ev, w, "seq", true, 1, INT64_MAX, &n, e)) < 0 ||
	    (r = json_get_str(ev, w, "type", true, 32, &s, e)) < 0 ||
	    (r = json_get_num(ev, w, "time", false, 0, 1e11, &d, e)) < 0)
		return r;
	if (strcmp(s, "metrics") == 0)
		return metrics_check_event(ev, w, e);
	if (strcmp(s, "ready") == 0)
		return check_ready(ev, w, e);
	if (strcmp(s, "final") != 0)
		return 0;
	if ((r = json_get_str(ev, w, "reason", true, 32, &s, e)) < 0 ||
	    (r = check_reason(w, s, e)) < 0 ||
	    (r = json_get_int(ev, w, "exit_code", false, -1000, 1000, &n, e)) <
	        0 ||
	    (r = json_get_int(ev, w, "signal", false, 0, 128, &n, e)) < 0 ||
	    (r = json_get_int(ev, w, "peak_memory_bytes", false, 0, INT64_MAX,
	                      &n, e)) < 0 ||
	    (r = json_get_num(ev, w, "cpu_seconds", false, 0, 1e12, &d, e)) <
	        0 ||
	    (r = json_get_str(ev, w, "message", false, 4096, &s, e)) < 0 ||
	    (r = json_get_int(ev, w, "log_length", false, 0, INT64_MAX, &n,
	                      e)) < 0)
		return r;
	if (json_object_get(ev, "durations") &&
	    !json_is_object(json_object_get(ev, "durations")) &&
	    !json_is_null(json_object_get(ev, "durations")))
		return err_set(e, TERR_INVAL,
		               "%s.durations: expected an object", w);
	return 0;
}

static void set_final(struct ws *ws, int64_t job, int64_t att, json_t *ev)
{
	sqlite3_stmt *st = store_prep(
	    ws, "UPDATE attempts SET exit_code = ?1, signal = ?2, peak_memory "
	        "= ?3, cpu_seconds = ?4, durations = "
	        "json_patch(coalesce(durations, "
	        "'{}'), coalesce(?5, '{}')), "
	        "message = ?6, commit_id = coalesce(?7, commit_id) WHERE job "
	        "= ?8 AND attempt = ?9");
	json_t *v;
	char *d = NULL;

	v = json_object_get(ev, "exit_code");
	if (json_is_integer(v))
		sqlite3_bind_int64(st, 1, json_integer_value(v));
	v = json_object_get(ev, "signal");
	if (json_is_integer(v))
		sqlite3_bind_int64(st, 2, json_integer_value(v));
	v = json_object_get(ev, "peak_memory_bytes");
	if (json_is_integer(v))
		sqlite3_bind_int64(st, 3, json_integer_value(v));
	v = json_object_get(ev, "cpu_seconds");
	if (json_is_number(v))
		sqlite3_bind_double(st, 4, json_number_value(v));
	v = json_object_get(ev, "durations");
	if (json_is_object(v))
		d = json_dumps(v, JSON_COMPACT);
	sqlite3_bind_text(st, 5, d, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6,
	                  json_string_value(json_object_get(ev, "message")), -1,
	                  SQLITE_STATIC);
	sqlite3_bind_text(st, 7,
	                  json_string_value(json_object_get(ev, "commit")), -1,
	                  SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, job);
	sqlite3_bind_int64(st, 9, att);
	sqlite3_step(st);
	store_done(st);
	free(d);
	checkpoint_note_progress(ws, job, att, ev);
	/* a preempted attempt is requeued without counting against retries
	 * (docs/checkpointing.md) */
	sched_end_attempt(
	    ws, job, att, json_string_value(json_object_get(ev, "reason")),
	    strcmp(json_string_value(json_object_get(ev, "reason")),
	           "preempted") != 0);
}

static void apply_event(struct ws *ws, int64_t job, int64_t att, json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *commit = json_string_value(json_object_get(ev, "commit"));
	sqlite3_stmt *st;

	if (strcmp(type, "final") == 0) {
		set_final(ws, job, att, ev);
		return;
	}
	if (commit != NULL && strlen(commit) <= 64) {
		st = store_prep(ws,
		                "UPDATE attempts SET commit_id = ? WHERE job = "
		                "? AND attempt = ?");
		sqlite3_bind_text(st, 1, commit, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, job);
		sqlite3_bind_int64(st, 3, att);
		sqlite3_step(st);
		store_done(st);
	}
	if (strcmp(type, "progress") == 0)
		checkpoint_note_progress(ws, job, att, ev);
	if (strcmp(type, "ready") == 0) { /* the first one counts */
		st = store_prep(ws, "UPDATE attempts SET ready = json_object("
		                    "'address', ?, 'port', ?) WHERE job = ? "
		                    "AND attempt = ? AND ready IS NULL");
		sqlite3_bind_text(
		    st, 1, json_string_value(json_object_get(ev, "address")),
		    -1, SQLITE_STATIC);
		sqlite3_bind_int64(
		    st, 2, json_integer_value(json_object_get(ev, "port")));
		sqlite3_bind_int64(st, 3, job);
		sqlite3_bind_int64(st, 4, att);
		sqlite3_step(st);
		store_done(st);
	}
	if (strcmp(type, "started") == 0) {
		st = store_prep(ws,
		                "UPDATE attempts SET state = 'running' WHERE "
		                "job = ? AND attempt = ? AND state = "
		                "'assigned'");
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_int64(st, 2, att);
		sqlite3_step(st);
		store_done(st);
		st = store_prep(ws,
		                "UPDATE jobs SET state = 'running' WHERE id = "
		                "? AND state = 'assigned'");
		sqlite3_bind_int64(st, 1, job);
		sqlite3_step(st);
		store_done(st);
	}
}

/* Store one event; true when it was new. */
static bool store_event(struct ws *ws, int64_t job, int64_t att, json_t *ev)
{
	sqlite3_stmt *st =
	    store_prep(ws, "INSERT OR IGNORE INTO events(job, "
	                   "attempt, seq, body) VALUES (?,?,?,?)");
	char *body = json_dumps(ev, JSON_COMPACT);
	bool isnew;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_int64(st, 3,
	                   json_integer_value(json_object_get(ev, "seq")));
	sqlite3_bind_text(st, 4, body, -1, SQLITE_STATIC);
	isnew = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(ws->db) > 0;
	store_done(st);
	free(body);
	return isnew;
}

static int64_t max_seq(struct ws *ws, int64_t job, int64_t att)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT coalesce(max(seq), 0) FROM "
	                   "events WHERE job = ? AND attempt = ?");
	int64_t n = 0, m;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	store_done(st);
	/* metrics events are acknowledged by the metrics store (metrics.c) */
	m = store_metrics_seq(ws, job, att, 0);
	return m > n ? m : n;
}

/* True when every event of the batch is stored already (a retry). */
static bool all_stored(struct ws *ws, int64_t job, int64_t att, json_t *evs)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT 1 FROM events WHERE job = ? AND "
	                   "attempt = ? AND seq = ?");
	size_t i;
	json_t *ev;
	bool all = true;

	json_array_foreach(evs, i, ev)
	{
		int64_t seq = json_integer_value(json_object_get(ev, "seq"));
		if (metrics_is_event(ev)) {
			if (store_metrics_seq(ws, job, att, seq) != seq)
				all = false;
			continue;
		}
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_int64(st, 2, att);
		sqlite3_bind_int64(st, 3, seq);
		if (sqlite3_step(st) != SQLITE_ROW)
			all = false;
	}
	store_done(st);
	return all;
}

/* The job waits in the queue (a final event requeued it); db locked. */
static bool job_queued(struct ws *ws, int64_t job)
{
	sqlite3_stmt *st = store_prep(ws, "SELECT 1 FROM jobs WHERE id = ? AND "
	                                  "state = 'queued'");
	bool queued;

	sqlite3_bind_int64(st, 1, job);
	queued = sqlite3_step(st) == SQLITE_ROW;
	store_done(st);
	return queued;
}

static bool metrics_in(json_t *evs)
{
	size_t i;
	json_t *ev;

	json_array_foreach(evs, i, ev)
	{
		if (metrics_is_event(ev))
			return true;
	}
	return false;
}

static bool ready_in(json_t *evs)
{
	size_t i;
	json_t *ev;

	json_array_foreach(evs, i, ev)
	{
		if (strcmp(json_string_value(json_object_get(ev, "type")),
		           "ready") == 0)
			return true;
	}
	return false;
}

/* The agents of the gang of job/att when every rank of it is ready (the
 * start barrier, docs/multi-node.md); 0 while one is not.  db locked. */
static int gang_ready_agents(struct ws *ws, int64_t job, int64_t att,
                             char agents[][48])
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT b.agent_id, b.ready IS NOT NULL FROM attempts a JOIN "
	        "attempts b ON b.job = a.job AND b.attempt - b.rank = "
	        "a.attempt - a.rank WHERE a.job = ? AND a.attempt = ?");
	int n = 0;
	bool all = true;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_int(st, 1) == 0)
			all = false;
		if (n < GANG_MAX_NODES)
			snprintf(agents[n++], 48, "%s",
			         (const char *)sqlite3_column_text(st, 0));
	}
	store_done(st);
	return all ? n : 0;
}

static int post_events(struct req *r, int64_t job, int64_t att, json_t *evs)
{
	struct ws *ws = r->ws;
	json_t *ev;
	size_t i;
	int64_t acked;
	bool requeued;
	int rc, nready = 0;
	char ready_agents[GANG_MAX_NODES][48];

	store_lock(ws);
	rc = sched_attempt_check(ws, job, att, r->agent_id);
	if (rc == 0 && metrics_in(evs)) {
		/* the points first, outside the database lock (idempotent by
		 * seq in their own store); then the batch as usual */
		store_unlock(ws);
		if (metrics_apply(ws, job, att, evs) < 0)
			return reply_internal(r, "cannot store metrics");
		store_lock(ws);
		rc = sched_attempt_check(ws, job, att, r->agent_id);
	}
	if (rc == TERR_CONFLICT && all_stored(ws, job, att, evs))
		rc = 0, evs = NULL; /* a retry of what was stored: ack it */
	if (rc == 0 && evs != NULL && (rc = store_begin(ws)) == 0) {
		json_array_foreach(evs, i, ev)
		{
			if (sched_attempt_check(ws, job, att, r->agent_id) != 0)
				break; /* a final event ended it */
			if (metrics_is_event(ev))
				continue; /* stored by metrics_apply */
			if (store_event(ws, job, att, ev))
				apply_event(ws, job, att, ev);
		}
		rc = store_commit(ws);
		if (rc < 0)
			store_rollback(ws);
	}
	acked = max_seq(ws, job, att);
	requeued = rc == 0 && job_queued(ws, job);
	if (rc == 0 && ready_in(evs))
		nready = gang_ready_agents(ws, job, att, ready_agents);
	store_unlock(ws);
	/* the last rank at the barrier: every rank's agent hears it now */
	for (int k = 0; k < nready; k++)
		ws_notify_agent(ws, ready_agents[k]);
	if (rc == TERR_NOTFOUND)
		return reply_error(r, 404, "not_found", NULL,
		                   "attempt %lld/%lld was never given to this "
		                   "agent",
		                   (long long)job, (long long)att);
	if (rc == TERR_CONFLICT)
		return reply_error(r, 409, "conflict", NULL,
		                   "attempt %lld/%lld is not current (lost, "
		                   "ended or superseded): stop sending for it",
		                   (long long)job, (long long)att);
	if (rc < 0)
		return reply_internal(r, "cannot store events");
	/* only a job back in the queue is news for other agents */
	ws_notify_agent(ws, r->agent_id);
	ws_notify_job(ws, job);
	if (requeued)
		sched_wake_queued(ws);
	return reply_json(r, 200, json_pack("{s:I}", "acked", acked));
}

static int attempts_events(struct req *r)
{
	json_t *b = NULL, *evs;
	struct err e = {0};
	int64_t job, att;
	size_t i;
	int st;

	if (req_seg_id(r, 1, &job) < 0 || req_seg_id(r, 2, &att) < 0 ||
	    req_json(r, &b) < 0)
		return r->status;
	evs = json_object_get(b, "events");
	if (json_check_keys(b, "", (const char *const[]){"events", NULL}, &e) <
	        0 ||
	    (!json_is_array(evs) &&
	     err_set(&e, TERR_INVAL, "events: expected an array") < 0) ||
	    (json_array_size(evs) > MAX_EVENTS &&
	     err_set(&e, TERR_INVAL, "events: more than %d", MAX_EVENTS) < 0)) {
		st = reply_err(r, &e);
		goto out;
	}
	for (i = 0; i < json_array_size(evs); i++)
		if (check_event(json_array_get(evs, i), i, &e) < 0) {
			st = reply_err(r, &e);
			goto out;
		}
	st = post_events(r, job, att, evs);
out:
	json_decref(b);
	return st;
}

static bool output_path_ok(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > WS_MAX_PATH || !utf8_valid(p, n) ||
	    !path_is_safe_relative(p))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
			return false;
	return strstr(p, "//") == NULL && p[n - 1] != '/';
}

int reply_attempt_error(struct req *r, int rc, int64_t job, int64_t att)
{
	if (rc == TERR_NOTFOUND)
		return reply_error(r, 404, "not_found", NULL,
		                   "attempt %lld/%lld was never given to this "
		                   "agent",
		                   (long long)job, (long long)att);
	return reply_error(r, 409, "conflict", NULL,
	                   "attempt %lld/%lld is not current", (long long)job,
	                   (long long)att);
}

int upload_pre(struct req *r, int64_t *job, int64_t *att)
{
	const char *sha = req_header(r, "Tether-Sha256");
	int rc;

	if (sha == NULL || strlen(sha) != 64 ||
	    strspn(sha, "0123456789abcdef") != 64)
		return reply_error(r, 400, "invalid", "sha256",
		                   "sha256: header Tether-Sha256 must be 64 "
		                   "lowercase hex digits");
	if (req_seg_id(r, 1, job) < 0 || req_seg_id(r, 2, att) < 0)
		return r->status;
	store_lock(r->ws);
	rc = sched_attempt_check(r->ws, *job, *att, r->agent_id);
	store_unlock(r->ws);
	if (rc == TERR_NOTFOUND || rc == TERR_CONFLICT)
		return reply_attempt_error(r, rc, *job, *att);
	return 0;
}

int upload_store(struct req *r, char hex[65], const char *what)
{
	if (req_body_file(r, hex) < 0)
		return reply_internal(r, "cannot store the upload");
	if (strcmp(hex, req_header(r, "Tether-Sha256")) != 0)
		return reply_error(r, 400, "invalid", "sha256",
		                   "sha256: the body's sha256 is %s, not the "
		                   "one in Tether-Sha256 (incomplete upload?)",
		                   hex);
	if (blob_store(r, hex) < 0)
		return reply_internal(r, what);
	return 0;
}

/* Where a rank's outputs go (docs/multi-node.md): the attempt's rank,
 * and whether the job keeps every rank's outputs (outputs_from "all" with
 * nodes > 1: under rank 0's attempt, as rank-k/<path>); db locked. */
static void output_rank(struct ws *ws, int64_t job, int64_t att, int64_t *rank,
                        bool *all)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT a.rank, coalesce(json_extract(j.spec, "
	        "'$.outputs_from'), 'rank0') = 'all' AND coalesce("
	        "json_extract(j.spec, '$.nodes'), 1) > 1 FROM attempts a JOIN "
	        "jobs j ON j.id = a.job WHERE a.job = ? AND a.attempt = ?");

	*rank = 0;
	*all = false;
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*rank = sqlite3_column_int64(st, 0);
		*all = sqlite3_column_int(st, 1) != 0;
	}
	store_done(st);
}

/* Before the body: the path, the header and the attempt; a rank other
 * than 0 of a job that keeps rank 0's outputs only has none to send. */
static int output_pre(struct req *r)
{
	int64_t job, att, rank;
	bool all;

	if (!output_path_ok(r->rest))
		return reply_error(
		    r, 400, "invalid", "path",
		    "path: must be relative, normalised, without "
		    "'..' or empty components, at most %d bytes",
		    WS_MAX_PATH);
	if (upload_pre(r, &job, &att) != 0)
		return r->status;
	store_lock(r->ws);
	output_rank(r->ws, job, att, &rank, &all);
	store_unlock(r->ws);
	if (rank > 0 && !all)
		return reply_error(r, 400, "invalid", "outputs_from",
		                   "outputs_from: job %lld keeps rank 0's "
		                   "outputs only; rank %lld sends none",
		                   (long long)job, (long long)rank);
	return 0;
}

/* Move the uploaded temp file into blobs/<sha256>. */
int blob_store(struct req *r, const char *hex)
{
	char *path = xasprintf("%s/blobs/%s", r->ws->dir, hex);
	int rc = 0;

	if (access(path, F_OK) != 0 && rename(r->tmp_path, path) < 0)
		rc = -1;
	free(path);
	if (rc == 0) {
		char *d = xasprintf("%s/blobs", r->ws->dir);
		rc = dir_fsync(d, NULL);
		free(d);
	}
	return rc;
}

static int output_put(struct req *r)
{
	struct ws *ws = r->ws;
	char hex[65], *path = NULL;
	int64_t job, att, rank;
	sqlite3_stmt *st;
	bool all;
	int rc;

	if (output_pre(r) != 0 ||
	    upload_store(r, hex, "cannot store the output file") != 0)
		return r->status;
	job = strtoll(r->segs[1], NULL, 10);
	att = strtoll(r->segs[2], NULL, 10);
	store_lock(ws);
	rc = sched_attempt_check(ws, job, att, r->agent_id);
	output_rank(ws, job, att, &rank, &all);
	path = all ? xasprintf("rank-%lld/%s", (long long)rank, r->rest)
	           : xstrdup(r->rest);
	if (rc == 0 && rank > 0 && !all) {
		rc = TERR_INVAL;
	} else if (rc == 0) {
		st = store_prep(ws,
		                "INSERT OR REPLACE INTO outputs(job, attempt, "
		                "path, size, sha256, created_at) VALUES "
		                "(?,?,?,?,?,?)");
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_int64(st, 2, all ? att - rank : att);
		sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, r->size);
		sqlite3_bind_text(st, 5, hex, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 6, ws_now());
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : TERR_IO;
		store_done(st);
	}
	store_unlock(ws);
	if (rc == TERR_NOTFOUND || rc == TERR_CONFLICT)
		rc = reply_attempt_error(r, rc, job, att);
	else if (rc == TERR_INVAL)
		rc =
		    reply_error(r, 400, "invalid", "outputs_from",
		                "outputs_from: job %lld keeps rank 0's outputs "
		                "only",
		                (long long)job);
	else if (rc < 0)
		rc = reply_internal(r, "cannot record the output");
	else
		rc = reply_json(r, 201,
		                json_pack("{s:s,s:I,s:s}", "path", path, "size",
		                          (json_int_t)r->size, "sha256", hex));
	free(path);
	return rc;
}

const struct route routes_attempt[] = {
    {"POST", "attempts/*/*/events", AUTH_AGENT, BODY_MEM,
     offsetof(struct ws_conf, max_body), attempts_events},
    {"PUT", "attempts/*/*/outputs/**", AUTH_AGENT, BODY_FILE,
     offsetof(struct ws_conf, max_output), output_put, output_pre},
    {NULL, NULL, 0, 0, 0, NULL},
};
