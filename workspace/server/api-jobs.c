/* api-jobs.c: admin job calls: submit, list, show, cancel. */
#include "workspace/server/http.h"
#include "common/jobspec.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static bool snapshot_exists(struct ws *ws, const char *id)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT 1 FROM snapshots WHERE id = ?");
	bool ok;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	ok = sqlite3_step(st) == SQLITE_ROW;
	store_done(st);
	return ok;
}

/* Insert the job and its secrets; returns the new id or -1. */
static int64_t insert_job(struct ws *ws, const struct jobspec *s,
                          json_t *masked)
{
	sqlite3_stmt *st;
	char *spec = json_dumps(masked, JSON_COMPACT | JSON_SORT_KEYS);
	char *labels = NULL;
	json_t *pl =
	    json_object_get(json_object_get(masked, "placement"), "labels");
	double now = ws_now();
	int64_t id = -1;

	if (pl != NULL)
		labels = json_dumps(pl, JSON_COMPACT);
	st = store_prep(ws, "INSERT INTO jobs(name, state, priority, "
	                    "submitted_at, queued_at, spec, retries, snapshot, "
	                    "placement_agent, placement_labels, cpus, memory, "
	                    "gpus) VALUES (?,'queued',?,?,?,?,?,?,?,?,?,?,?)");
	sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, s->priority);
	sqlite3_bind_double(st, 3, now);
	sqlite3_bind_double(st, 4, now);
	sqlite3_bind_text(st, 5, spec, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, s->retries);
	sqlite3_bind_text(st, 7, s->source.snapshot, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, s->placement_agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, labels, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 10, s->resources.cpus);
	sqlite3_bind_int64(st, 11, s->resources.memory);
	sqlite3_bind_int64(st, 12, s->resources.gpus);
	if (sqlite3_step(st) == SQLITE_DONE)
		id = sqlite3_last_insert_rowid(ws->db);
	store_done(st);
	for (size_t i = 0; id > 0 && i < s->nsecrets; i++) {
		st = store_prep(ws, "INSERT INTO job_secrets(job, name, value) "
		                    "VALUES (?, ?, ?)");
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, s->secrets[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, s->secrets[i].value, -1,
		                  SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			id = -1;
		store_done(st);
	}
	free(spec);
	free(labels);
	return id;
}

static json_t *mask_secrets(json_t *root)
{
	json_t *m = json_deep_copy(root), *sec = json_object_get(m, "secrets");
	const char *k;
	json_t *v;

	json_object_foreach(sec, k, v)
	    json_object_set_new(sec, k, json_string("***"));
	return m;
}

static int jobs_submit(struct req *r)
{
	struct ws *ws = r->ws;
	struct jobspec *s = NULL;
	struct err e = {0};
	json_t *root = NULL, *masked = NULL, *ck = NULL;
	int64_t id = -1;
	int st;

	if (req_json(r, &root) < 0)
		return r->status;
	if (jobspec_parse_json(root, &s, &e) < 0) {
		st = reply_err(r, &e);
		goto out;
	}
	if (s->source.kind == SOURCE_PATH) {
		st =
		    reply_error(r, 400, "invalid", "source.path",
		                "source.path: a node directory is for local "
		                "submit only; upload it (tether submit --dir)");
		goto out;
	}
	masked = mask_secrets(root);
	store_lock(ws);
	if (s->source.snapshot && !snapshot_exists(ws, s->source.snapshot)) {
		store_unlock(ws);
		st =
		    reply_error(r, 400, "invalid", "source.snapshot",
		                "source.snapshot: no uploaded snapshot with id "
		                "'%.80s' (POST /api/v1/snapshots first)",
		                s->source.snapshot);
		goto out;
	}
	if (s->checkpoint.resume_from > 0 &&
	    json_is_null(
	        ck = checkpoint_of_job(ws, s->checkpoint.resume_from))) {
		store_unlock(ws);
		st = reply_error(r, 400, "invalid", "checkpoint.resume_from",
		                 "checkpoint.resume_from: job %lld has no kept "
		                 "checkpoint (no such job, it kept none, or "
		                 "retention removed it)",
		                 (long long)s->checkpoint.resume_from);
		goto out;
	}
	if (store_begin(ws) == 0 && (id = insert_job(ws, s, masked)) > 0 &&
	    (ck == NULL || checkpoint_give(ws, id, ck) == 0) &&
	    store_commit(ws) == 0) {
		store_unlock(ws);
		sched_wake_queued(ws);
		char shown[WS_MAX_NAME * 2];
		log_info("job=%lld submitted name=\"%s\"", (long long)id,
		         str_escape(s->name, shown, sizeof(shown)));
		st = reply_json(r, 201,
		                json_pack("{s:I,s:s}", "id", (json_int_t)id,
		                          "state", "queued"));
	} else {
		store_rollback(ws);
		store_unlock(ws);
		st = reply_internal(r, "cannot store the job");
	}
out:
	json_decref(root);
	json_decref(masked);
	json_decref(ck);
	jobspec_free(s);
	return st;
}

#define SUMMARY_COLS                                                           \
	"j.id, j.name, j.state, j.reason, j.priority, j.submitted_at, "        \
	"j.ended_at, j.attempt, ag.name"
#define SUMMARY_FROM                                                           \
	" FROM jobs j LEFT JOIN attempts a ON a.job = j.id AND a.attempt = "   \
	"j.attempt LEFT JOIN agents ag ON ag.id = a.agent_id "

static json_t *job_summary(sqlite3_stmt *st)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
	                 store_col_int(st, 0), "name", store_col_str(st, 1),
	                 "state", store_col_str(st, 2), "reason",
	                 store_col_str(st, 3), "priority", store_col_int(st, 4),
	                 "submitted_at", store_col_real(st, 5), "ended_at",
	                 store_col_real(st, 6), "attempt", store_col_int(st, 7),
	                 "agent", store_col_str(st, 8));
}

static int jobs_list(struct req *r)
{
	struct ws *ws = r->ws;
	const char *state = NULL, *agent, *name;
	json_t *list;
	sqlite3_stmt *st;
	int64_t limit;

	if (req_arg_i64(r, "limit", 1, 10000, 100, &limit) < 0 ||
	    req_arg_name(r, "state", &state) < 0 ||
	    req_arg_name(r, "agent", &agent) < 0 ||
	    req_arg_name(r, "name", &name) < 0)
		return r->status;
	/* states and reasons are lowercase words (new ones may come) */
	if (state != NULL &&
	    strspn(state, "abcdefghijklmnopqrstuvwxyz_") != strlen(state))
		return reply_error(r, 400, "invalid", "state",
		                   "state: '%s' is not a job state "
		                   "(docs/protocol.md)",
		                   state);
	list = json_array();
	store_lock(ws);
	st =
	    store_prep(ws, "SELECT " SUMMARY_COLS SUMMARY_FROM
	                   "WHERE (?1 IS NULL OR j.state = ?1) AND (?2 IS NULL "
	                   "OR ag.name = ?2 OR ag.id = ?2) AND (?3 IS NULL OR "
	                   "j.name = ?3) ORDER BY j.id DESC LIMIT ?4");
	sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, agent, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, limit);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(list, job_summary(st));
	store_done(st);
	store_unlock(ws);
	return reply_json(r, 200, json_pack("{s:o}", "jobs", list));
}

static json_t *attempt_json(sqlite3_stmt *st)
{
	static const char *const phases[] = {"queued", "source",  "env",
	                                     "run",    "outputs", NULL};
	json_t *d = store_col_json(st, 14);

	if (!json_is_object(d)) {
		json_decref(d);
		d = json_object();
	}
	for (int i = 0; phases[i]; i++)
		if (json_object_get(d, phases[i]) == NULL)
			json_object_set_new(d, phases[i], json_null());
	return json_pack(
	    "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
	    "attempt", store_col_int(st, 0), "agent", store_col_str(st, 1),
	    "state", store_col_str(st, 2), "started_at", store_col_real(st, 3),
	    "ended_at", store_col_real(st, 4), "lease_deadline",
	    store_col_real(st, 5), "log_length", store_col_int(st, 6),
	    "exit_code", store_col_int(st, 7), "signal", store_col_int(st, 8),
	    "reason", store_col_str(st, 9), "peak_memory_bytes",
	    store_col_int(st, 10), "cpu_seconds", store_col_real(st, 11),
	    "commit", store_col_str(st, 12), "message", store_col_str(st, 13),
	    "durations", d, "acked_seq", store_col_int(st, 15));
}

/* log_final_length (the final event's, or null) and log_complete: the
 * attempt ended and its whole log is here. */
static void attempt_log_state(struct ws *ws, int64_t id, sqlite3_stmt *st,
                              json_t *a)
{
	const char *state = (const char *)sqlite3_column_text(st, 2);
	bool terminal = state && strcmp(state, "assigned") &&
	                strcmp(state, "running") && strcmp(state, "cancelling");
	int64_t fin = log_final_length(ws, id, sqlite3_column_int64(st, 0));

	json_object_set_new(a, "log_final_length",
	                    fin >= 0 ? json_integer(fin) : json_null());
	json_object_set_new(a, "log_complete",
	                    json_boolean(log_complete(
	                        terminal, sqlite3_column_int64(st, 6), fin)));
}

/* A live attempt's launcher sub-state from its newest `pending` event
 * (docs/protocol.md): sets "substate" ("pending" or null) and
 * "substate_reason" (Slurm's reason, or null) on a. */
static void attempt_substate(struct ws *ws, int64_t id, int64_t n, json_t *a)
{
	const char *state = json_string_value(json_object_get(a, "state"));
	sqlite3_stmt *st;
	json_t *ev = NULL;

	if (state != NULL && !sched_reason_terminal(state)) {
		st = store_prep(ws,
		                "SELECT body FROM events WHERE job = ? AND "
		                "attempt = ? AND json_extract(body, '$.type') "
		                "= 'pending' ORDER BY seq DESC LIMIT 1");
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, n);
		if (sqlite3_step(st) == SQLITE_ROW)
			ev = store_col_json(st, 0);
		store_done(st);
	}
	if (json_is_true(json_object_get(ev, "pending"))) {
		json_t *why = json_object_get(ev, "reason");
		json_object_set_new(a, "substate", json_string("pending"));
		json_object_set_new(a, "substate_reason",
		                    json_is_string(why) ? json_incref(why)
		                                        : json_null());
	} else {
		json_object_set_new(a, "substate", json_null());
		json_object_set_new(a, "substate_reason", json_null());
	}
	json_decref(ev);
}

static json_t *job_attempts(struct ws *ws, int64_t id)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT a.attempt, coalesce(ag.name, a.agent_id), a.state, "
	        "a.started_at, a.ended_at, a.lease_deadline, a.log_length, "
	        "a.exit_code, a.signal, a.reason, a.peak_memory, "
	        "a.cpu_seconds, a.commit_id, a.message, a.durations, "
	        "(SELECT coalesce(max(seq), 0) FROM events e WHERE e.job = "
	        "a.job AND "
	        "e.attempt = a.attempt), a.rank FROM attempts a LEFT JOIN "
	        "agents ag ON "
	        "ag.id = "
	        "a.agent_id WHERE a.job = ? ORDER BY a.attempt");
	/* column 16: the rank (0 for a one-node job's attempts) */
	json_t *list = json_array();

	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *a = attempt_json(st);
		int64_t n = sqlite3_column_int64(st, 0);
		/* metrics events are acknowledged by the metrics store */
		int64_t m = store_metrics_seq(ws, id, n, 0);
		if (m > json_integer_value(json_object_get(a, "acked_seq")))
			json_object_set_new(a, "acked_seq", json_integer(m));
		json_object_set_new(a, "progress",
		                    checkpoint_progress(ws, id, n));
		json_object_set_new(a, "checkpoint",
		                    checkpoint_of_attempt(ws, id, n));
		attempt_log_state(ws, id, st, a);
		attempt_substate(ws, id, n, a);
		json_object_set_new(a, "rank", store_col_int(st, 16));
		json_array_append_new(list, a);
	}
	store_done(st);
	return list;
}

/* The job's substate is its current attempt's. */
static void job_substate(json_t *job)
{
	json_t *atts = json_object_get(job, "attempts"), *a, *cur = NULL;
	int64_t n = json_integer_value(json_object_get(job, "attempt"));
	size_t i;

	json_array_foreach(atts, i, a) if (json_integer_value(json_object_get(
	                                       a, "attempt")) == n) cur = a;
	json_object_set(job, "substate",
	                cur ? json_object_get(cur, "substate") : json_null());
	json_object_set(job, "substate_reason",
	                cur ? json_object_get(cur, "substate_reason")
	                    : json_null());
}

/* "nodes" (the spec's, 1 by default) and "ranks": the current gang's rank
 * attempts, rank 0 first (docs/multi-node.md, "Seeing a multi-node job"). */
static void job_ranks(json_t *job)
{
	json_t *atts = json_object_get(job, "attempts"), *a;
	json_t *nodes = json_object_get(json_object_get(job, "spec"), "nodes");
	json_t *ranks = json_array();
	int64_t g = json_integer_value(json_object_get(job, "attempt"));
	int64_t n = json_is_integer(nodes) ? json_integer_value(nodes) : 1;
	size_t i;

	json_array_foreach(atts, i, a)
	{
		int64_t at = json_integer_value(json_object_get(a, "attempt"));
		int64_t rk = json_integer_value(json_object_get(a, "rank"));
		if (g > 0 && at - rk == g)
			json_array_append(ranks, a);
	}
	json_object_set_new(job, "nodes", json_integer(n));
	json_object_set_new(job, "ranks", ranks);
}

static int jobs_get(struct req *r)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	json_t *job = NULL;
	char *qr;
	int64_t id;

	if (req_seg_id(r, 1, &id) < 0)
		return r->status;
	store_lock(ws);
	st = store_prep(ws, "SELECT id, name, state, reason, priority, "
	                    "submitted_at, ended_at, attempt, spec, retries, "
	                    "cancel_requested FROM jobs WHERE id = ?");
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		qr = sched_queue_reason(ws, id);
		job = json_pack(
		    "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:o,s:o}",
		    "id", store_col_int(st, 0), "name", store_col_str(st, 1),
		    "state", store_col_str(st, 2), "reason",
		    store_col_str(st, 3), "priority", store_col_int(st, 4),
		    "submitted_at", store_col_real(st, 5), "ended_at",
		    store_col_real(st, 6), "attempt", store_col_int(st, 7),
		    "spec", store_col_json(st, 8), "retries",
		    store_col_int(st, 9), "cancel_requested",
		    sqlite3_column_int(st, 10), "queue_reason",
		    qr ? json_string(qr) : json_null(), "attempts",
		    job_attempts(ws, id));
		json_object_set_new(job, "checkpoint",
		                    checkpoint_of_job(ws, id));
		job_substate(job);
		job_ranks(job);
		free(qr);
	}
	store_done(st);
	store_unlock(ws);
	if (job == NULL)
		return reply_error(r, 404, "not_found", NULL, "no job %lld",
		                   (long long)id);
	return reply_json(r, 200, job);
}

static int jobs_cancel(struct req *r)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	char state[32] = "", agents[256][48];
	const char *next;
	int64_t id;
	int nagents = 0;

	if (req_seg_id(r, 1, &id) < 0)
		return r->status;
	store_lock(ws);
	st = store_prep(ws, "SELECT state FROM jobs WHERE id = ?");
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(state, sizeof(state), "%s",
		         sqlite3_column_text(st, 0));
	store_done(st);
	if (state[0] == '\0' || sched_reason_terminal(state)) {
		store_unlock(ws);
		if (state[0] == '\0')
			return reply_error(r, 404, "not_found", NULL,
			                   "no job %lld", (long long)id);
		return reply_error(r, 409, "conflict", NULL,
		                   "job %lld already ended: %s", (long long)id,
		                   state);
	}
	next = strcmp(state, "queued") == 0 ? "cancelled" : "cancelling";
	st = store_prep(ws,
	                strcmp(next, "cancelled") == 0
	                    ? "UPDATE jobs SET state = 'cancelled', reason = "
	                      "'cancelled', cancel_requested = 1, ended_at = "
	                      "?2 WHERE id = ?1"
	                    : "UPDATE jobs SET state = 'cancelling', "
	                      "cancel_requested = 1 WHERE id = ?1");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_double(st, 2, ws_now());
	sqlite3_step(st);
	store_done(st);
	/* news for the current attempt's agents (every rank of a gang) and
	 * the job's log readers */
	st = store_prep(ws, "SELECT a.agent_id FROM attempts a JOIN jobs j ON "
	                    "j.id = a.job AND j.attempt = a.attempt - a.rank "
	                    "WHERE j.id = ? LIMIT 256");
	sqlite3_bind_int64(st, 1, id);
	while (nagents < 256 && sqlite3_step(st) == SQLITE_ROW)
		snprintf(agents[nagents++], sizeof(agents[0]), "%s",
		         sqlite3_column_text(st, 0));
	store_done(st);
	store_unlock(ws);
	for (int i = 0; i < nagents; i++)
		ws_notify_agent(ws, agents[i]);
	ws_notify_job(ws, id);
	log_info("job=%lld cancel: %s", (long long)id, next);
	return reply_json(
	    r, 200,
	    json_pack("{s:I,s:s}", "id", (json_int_t)id, "state", next));
}

const struct route routes_jobs[] = {
    {"POST", "jobs", AUTH_ADMIN, BODY_MEM, offsetof(struct ws_conf, max_body),
     jobs_submit},
    {"GET", "jobs", AUTH_ADMIN, BODY_NONE, 0, jobs_list},
    {"GET", "jobs/*", AUTH_ADMIN, BODY_NONE, 0, jobs_get},
    {"POST", "jobs/*/cancel", AUTH_ADMIN, BODY_MEM,
     offsetof(struct ws_conf, max_body), jobs_cancel},
    {NULL, NULL, 0, 0, 0, NULL},
};
