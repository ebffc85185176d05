/* api-agent.c: agent calls: register (registration token), rotate,
 * handback.  The lease long-poll is in lease.c. */
#include "workspace/server/http.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A label: 1..128 printable ASCII bytes without spaces. */
static bool label_ok(json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > WS_MAX_NAME || n != json_string_length(v))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

int agent_check_labels(json_t *labels, const char *field, struct err *e)
{
	size_t i;
	json_t *v;

	if (labels == NULL)
		return 0;
	if (!json_is_array(labels) || json_array_size(labels) > WS_MAX_LABELS)
		return err_set(e, TERR_INVAL,
		               "%s: expected an array of at most %d labels",
		               field, WS_MAX_LABELS);
	json_array_foreach(labels, i, v) if (!label_ok(v)) return err_set(
	    e, TERR_INVAL,
	    "%s: labels are 1 to %d printable characters without spaces", field,
	    WS_MAX_NAME);
	return 0;
}

/* capacity.slurm: {"partitions": [{"name", "default", "state", "nodes",
 * "cpus", "idle_cpus", "memory", "idle_memory", "gpus", "idle_gpus"}]}
 * (docs/protocol.md); other partition keys are kept as sent. */
static int check_slurm(json_t *slurm, const char *where, struct err *e)
{
	static const char *const keys[] = {"partitions", "default_launcher",
	                                   NULL};
	static const char *const nums[] = {
	    "nodes",       "cpus",      "idle_cpus",   "memory",
	    "gpus",        "idle_gpus", "idle_memory", "node_cpus",
	    "node_memory", "node_gpus", NULL};
	json_t *parts, *p;
	const char *s;
	int64_t i64;
	size_t i;
	int r;

	if (json_is_null(slurm))
		return 0;
	if ((r = json_check_keys(slurm, where, keys, e)) < 0 ||
	    (r = json_get_str(slurm, where, "default_launcher", false, 32, &s,
	                      e)) < 0)
		return r;
	parts = json_object_get(slurm, "partitions");
	if (!json_is_array(parts) || json_array_size(parts) > 256)
		return err_set(e, TERR_INVAL,
		               "%s.partitions: expected an array (at most 256)",
		               where);
	json_array_foreach(parts, i, p)
	{
		char w[64];

		snprintf(w, sizeof(w), "%s.partitions[%zu]", where, i);
		if (!json_is_object(p))
			return err_set(e, TERR_INVAL, "%s: expected an object",
			               w);
		if ((r = json_get_str(p, w, "name", true, WS_MAX_NAME, &s, e)) <
		        0 ||
		    (r = json_get_str(p, w, "state", false, WS_MAX_NAME, &s,
		                      e)) < 0)
			return r;
		for (int k = 0; nums[k] != NULL; k++)
			if ((r = json_get_int(p, w, nums[k], false, 0,
			                      INT64_MAX, &i64, e)) < 0)
				return r;
	}
	return 0;
}

/* capacity.spark: {"master", "workers", "cores", "idle_cores", "memory",
 * "worker_cores", "worker_memory"} (docs/protocol.md, docs/spark.md). */
static int check_spark(json_t *sp, const char *where, struct err *e)
{
	static const char *const keys[] = {
	    "master", "workers",      "cores",         "idle_cores",
	    "memory", "worker_cores", "worker_memory", NULL};
	const char *s;
	int64_t i64;
	int r;

	if (json_is_null(sp))
		return 0;
	if ((r = json_check_keys(sp, where, keys, e)) < 0 ||
	    (r = json_get_str(sp, where, "master", false, 512, &s, e)) < 0)
		return r;
	for (int k = 1; keys[k] != NULL; k++)
		if ((r = json_get_int(sp, where, keys[k], false, 0, INT64_MAX,
		                      &i64, e)) < 0)
			return r;
	return 0;
}

int agent_check_capacity(json_t *cap, const char *where, struct err *e)
{
	static const char *const keys[] = {"cpus",  "memory", "disk", "gpus",
	                                   "slurm", "spark",  NULL};
	static const char *const gkeys[] = {"index", "model", "memory", "uuid",
	                                    NULL};
	double d;
	int64_t i64;
	json_t *gpus, *g;
	const char *s;
	size_t i;
	int r;

	if ((r = json_check_keys(cap, where, keys, e)) < 0 ||
	    (r = json_get_num(cap, where, "cpus", false, 0, 1e6, &d, e)) < 0 ||
	    (r = json_get_int(cap, where, "memory", false, 0, INT64_MAX, &i64,
	                      e)) < 0 ||
	    (r = json_get_int(cap, where, "disk", false, 0, INT64_MAX, &i64,
	                      e)) < 0)
		return r;
	if (json_object_get(cap, "slurm") != NULL &&
	    (r = check_slurm(json_object_get(cap, "slurm"), "capacity.slurm",
	                     e)) < 0)
		return r;
	if (json_object_get(cap, "spark") != NULL &&
	    (r = check_spark(json_object_get(cap, "spark"), "capacity.spark",
	                     e)) < 0)
		return r;
	gpus = json_object_get(cap, "gpus");
	if (gpus == NULL || json_is_null(gpus))
		return 0;
	if (!json_is_array(gpus) || json_array_size(gpus) > 256)
		return err_set(e, TERR_INVAL, "%s.gpus: expected an array",
		               where);
	json_array_foreach(gpus, i, g)
	{
		char w[64];
		snprintf(w, sizeof(w), "%s.gpus[%zu]", where, i);
		if ((r = json_check_keys(g, w, gkeys, e)) < 0 ||
		    (r = json_get_int(g, w, "index", false, 0, 4096, &i64, e)) <
		        0 ||
		    (r = json_get_str(g, w, "model", false, WS_MAX_NAME, &s,
		                      e)) < 0 ||
		    (r = json_get_num(g, w, "memory", false, 0, 1e18, &d, e)) <
		        0 ||
		    (r = json_get_str(g, w, "uuid", false, WS_MAX_NAME, &s,
		                      e)) < 0)
			return r;
	}
	return 0;
}

static int check_register(json_t *b, struct err *e)
{
	static const char *const keys[] = {
	    "name",      "labels",      "version", "protocol", "machine_id",
	    "transport", "replace",     "os",      "kernel",   "capacity",
	    "facts",     "queue_depth", NULL};
	const char *s;
	int64_t i;
	bool rep;
	int r;

	if ((r = json_check_keys(b, "", keys, e)) < 0 ||
	    (r = json_get_str(b, "", "name", true, WS_MAX_NAME, &s, e)) < 0)
		return r;
	if (!auth_valid_name(s, WS_MAX_NAME))
		return err_set(e, TERR_INVAL,
		               "name: 1 to %d characters of A-Z a-z 0-9 . _ -",
		               WS_MAX_NAME);
	if ((r = agent_check_labels(json_object_get(b, "labels"), "labels",
	                            e)) < 0)
		return r;
	for (const char *const *k =
	         (const char *const[]){"version", "machine_id", "transport",
	                               "os", "kernel", NULL};
	     *k; k++) {
		s = NULL;
		if ((r = json_get_str(b, "", *k, false, 256, &s, e)) < 0)
			return r;
		if (s != NULL && has_control(s)) /* shown in lists, logs */
			return err_set(e, TERR_INVAL,
			               "%s: control characters are not "
			               "allowed",
			               *k);
	}
	if ((r = json_get_bool(b, "", "replace", false, &rep, e)) < 0 ||
	    (r = json_get_int(b, "", "queue_depth", false, 0, 10000, &i, e)) <
	        0 ||
	    (r = json_get_int(b, "", "protocol", false, 0, 1000, &i, e)) < 0)
		return r;
	if (json_object_get(b, "capacity") == NULL)
		return err_set(e, TERR_INVAL,
		               "capacity: required field is missing");
	if ((r = agent_check_capacity(json_object_get(b, "capacity"),
	                              "capacity", e)) < 0)
		return r;
	if (json_object_get(b, "facts") &&
	    !json_is_object(json_object_get(b, "facts")))
		return err_set(e, TERR_INVAL, "facts: expected an object");
	return 0;
}

/* Use one registration token; its labels go to *labels. */
static int take_token(struct ws *ws, const char *tok, json_t **labels)
{
	sqlite3_stmt *st;
	char hash[65];
	int r = TERR_AUTH;

	auth_hash(tok, hash);
	st = store_prep(ws, "UPDATE tokens SET uses_left = uses_left - 1 WHERE "
	                    "hash = ? AND uses_left > 0 AND expires_at > ? "
	                    "RETURNING labels");
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, ws_now());
	if (sqlite3_step(st) == SQLITE_ROW) {
		*labels = store_col_json(st, 0);
		r = 0;
	}
	store_done(st);
	return r;
}

/* Active agents with this name or machine id: revoke (replace) or 409. */
static int check_conflict(struct ws *ws, json_t *b, bool replace)
{
	const char *name = json_string_value(json_object_get(b, "name"));
	const char *mid = json_string_value(json_object_get(b, "machine_id"));
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT id FROM agents WHERE state != 'revoked' AND (name = ? "
	        "OR (machine_id IS NOT NULL AND machine_id = ?))");
	json_t *ids = json_array(), *v;
	size_t i;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, mid, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(ids, store_col_str(st, 0));
	store_done(st);
	if (json_array_size(ids) > 0 && !replace) {
		json_decref(ids);
		return TERR_CONFLICT;
	}
	json_array_foreach(ids, i, v)
	    agent_revoke(ws, json_string_value(v), true);
	json_decref(ids);
	return 0;
}

static void merge_labels(json_t *labels, json_t *more)
{
	size_t i, j;
	json_t *v, *w;

	json_array_foreach(more, i, v)
	{
		bool have = false;
		json_array_foreach(labels, j, w) if (json_equal(v, w)) have =
		    true;
		if (!have && json_array_size(labels) < WS_MAX_LABELS)
			json_array_append(labels, v);
	}
}

static int insert_agent(struct ws *ws, json_t *b, json_t *labels,
                        const char *id, const char *secret_hash)
{
	sqlite3_stmt *st = store_prep(
	    ws, "INSERT INTO agents(id, name, machine_id, secret_hash, labels,"
	        " state, capacity, version, transport, os, kernel, facts, "
	        "queue_depth, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, "
	        "?5, 'online', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)");
	char *l = json_dumps(labels, JSON_COMPACT);
	char *cap = json_dumps(json_object_get(b, "capacity"), JSON_COMPACT);
	char *facts =
	    json_object_get(b, "facts")
	        ? json_dumps(json_object_get(b, "facts"), JSON_COMPACT)
	        : NULL;
	json_t *qd = json_object_get(b, "queue_depth");
	int ok;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	for (int i = 0; i < 2; i++)
		sqlite3_bind_text(
		    st, 2 + i,
		    json_string_value(json_object_get(
		        b, (const char *[]){"name", "machine_id"}[i])),
		    -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, secret_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, l, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, cap, -1, SQLITE_STATIC);
	for (int i = 0; i < 4; i++)
		sqlite3_bind_text(
		    st, 7 + i,
		    json_string_value(json_object_get(
		        b, (const char *[]){"version", "transport", "os",
		                            "kernel"}[i])),
		    -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, facts, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 12, qd ? json_integer_value(qd) : 2);
	sqlite3_bind_double(st, 13, ws_now());
	ok = sqlite3_step(st) == SQLITE_DONE;
	store_done(st);
	free(l);
	free(cap);
	free(facts);
	return ok ? 0 : TERR_IO;
}

static int agents_register(struct req *r)
{
	struct ws *ws = r->ws;
	const char *h = req_header(r, "Authorization");
	json_t *b = NULL, *labels = NULL, *tl = NULL, *p;
	struct err e = {0};
	char id[64], secret[80], hash[65];
	int rc, st;

	if (req_json(r, &b) < 0)
		return r->status;
	p = json_object_get(b, "protocol");
	if (p != NULL && json_is_integer(p) &&
	    json_integer_value(p) != WS_PROTOCOL) {
		st = reply_error(r, 426, "upgrade_required", "protocol",
		                 "protocol %lld is not supported; this "
		                 "workspace speaks protocol 1",
		                 (long long)json_integer_value(p));
		goto out;
	}
	if (check_register(b, &e) < 0) {
		st = reply_err(r, &e);
		goto out;
	}
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0) {
		st = reply_error(r, 401, "unauthorized", NULL,
		                 "register needs 'Authorization: Bearer "
		                 "<registration token>'");
		goto out;
	}
	labels = json_copy(json_object_get(b, "labels"));
	if (labels == NULL)
		labels = json_array();
	auth_new_token("a_", id, 2 + 17);
	auth_new_token("ta_", secret, sizeof(secret));
	auth_hash(secret, hash);
	store_lock(ws);
	if ((rc = store_begin(ws)) < 0) {
		st = reply_error(r, 503, "busy", NULL,
		                 "the database is busy: register again");
	} else if ((rc = take_token(ws, h + 7, &tl)) < 0) {
		st = reply_error(r, 401, "unauthorized", NULL,
		                 "registration token unknown, expired or used "
		                 "up: ask the admin for a new one "
		                 "(tether token create)");
	} else if ((rc = check_conflict(
	                ws, b, json_is_true(json_object_get(b, "replace")))) <
	           0) {
		st = reply_error(r, 409, "conflict", "name",
		                 "an active agent with this name or machine_id "
		                 "exists (register with \"replace\": true to "
		                 "take its place)");
	} else {
		merge_labels(labels, tl);
		rc = insert_agent(ws, b, labels, id, hash);
		st = rc < 0 ? reply_internal(r, "cannot store the agent") : 0;
	}
	if (rc == 0 && store_commit(ws) == 0) {
		store_unlock(ws);
		/* a replaced agent's polls must hear they are revoked and its
		 * lost jobs are queued again (rare: wake everyone); a new
		 * agent has no parked poll to wake */
		if (json_is_true(json_object_get(b, "replace")))
			ws_notify(ws);
		log_info("agent %s registered as %s",
		         json_string_value(json_object_get(b, "name")), id);
		st = reply_json(
		    r, 201,
		    json_pack(
		        "{s:s,s:s,s:O,s:f,s:f,s:O}", "agent_id", id, "secret",
		        secret, "name", json_object_get(b, "name"), "lease_ttl",
		        (double)ws->conf.lease_ttl_ms / 1000.0, "poll",
		        (double)ws->conf.poll_ms / 1000.0, "labels", labels));
	} else {
		store_rollback(ws);
		store_unlock(ws);
		if (st == 0) /* stored, then the commit failed */
			st = reply_error(r, 503, "busy", NULL,
			                 "could not store the agent: register "
			                 "again");
	}
out:
	explicit_bzero(secret, sizeof(secret));
	json_decref(b);
	json_decref(labels);
	json_decref(tl);
	return st;
}

static int agents_rotate(struct req *r)
{
	struct ws *ws = r->ws;
	char secret[80], hash[65];
	sqlite3_stmt *st;
	int s;

	auth_new_token("ta_", secret, sizeof(secret));
	auth_hash(secret, hash);
	store_lock(ws);
	st = store_prep(ws,
	                "UPDATE agents SET new_secret_hash = ? WHERE id = ?");
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->agent_id, -1, SQLITE_STATIC);
	s = sqlite3_step(st);
	store_done(st);
	store_unlock(ws);
	if (s != SQLITE_DONE)
		return reply_internal(r, "cannot store the new secret");
	s = reply_json(r, 200, json_pack("{s:s}", "secret", secret));
	explicit_bzero(secret, sizeof(secret));
	return s;
}

static int attempts_handback(struct req *r)
{
	struct ws *ws = r->ws;
	int64_t job, att;
	int rc;

	if (req_seg_id(r, 1, &job) < 0 || req_seg_id(r, 2, &att) < 0)
		return r->status;
	store_lock(ws);
	rc = sched_attempt_check(ws, job, att, r->agent_id);
	if (rc == 0 && (rc = store_begin(ws)) == 0) {
		sched_end_attempt(ws, job, att, "handed_back", false);
		if ((rc = store_commit(ws)) < 0)
			store_rollback(ws);
	}
	store_unlock(ws);
	if (rc == TERR_NOTFOUND || rc == TERR_CONFLICT)
		return reply_attempt_error(r, rc, job, att);
	if (rc < 0)
		return reply_internal(r, "cannot hand back");
	ws_notify_job(ws, job);
	sched_wake_queued(ws);
	return reply_json(r, 200,
	                  json_pack("{s:I,s:I,s:s}", "job", (json_int_t)job,
	                            "attempt", (json_int_t)att, "state",
	                            "handed_back"));
}

const struct route routes_agent[] = {
    {"POST", "agents/register", AUTH_NONE, BODY_MEM,
     offsetof(struct ws_conf, max_body), agents_register},
    {"POST", "agents/rotate", AUTH_AGENT, BODY_MEM,
     offsetof(struct ws_conf, max_body), agents_rotate},
    {"POST", "attempts/*/*/handback", AUTH_AGENT, BODY_MEM,
     offsetof(struct ws_conf, max_body), attempts_handback},
    {NULL, NULL, 0, 0, 0, NULL},
};
