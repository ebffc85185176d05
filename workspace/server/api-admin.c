/* api-admin.c: admin calls about tokens and agents. */
#include "workspace/server/http.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static int tokens_create(struct req *r)
{
	struct ws *ws = r->ws;
	json_t *b = NULL, *labels;
	struct err e = {0};
	int64_t uses = 1;
	double ttl = 3600, now = ws_now();
	char tok[80], id[40], *l = NULL;
	sqlite3_stmt *st;
	int s;

	if (r->body.len == 0)
		buf_append(&r->body, "{}", 2, NULL);
	if (req_json(r, &b) < 0)
		return r->status;
	labels = json_object_get(b, "labels");
	if (json_check_keys(
	        b, "", (const char *const[]){"uses", "ttl", "labels", NULL},
	        &e) < 0 ||
	    json_get_int(b, "", "uses", false, 1, 1000000, &uses, &e) < 0 ||
	    json_get_num(b, "", "ttl", false, 1, 10 * 365 * 86400.0, &ttl, &e) <
	        0 ||
	    agent_check_labels(labels, "labels", &e) < 0) {
		s = reply_err(r, &e);
		json_decref(b);
		return s;
	}
	labels = labels ? json_copy(labels) : json_array();
	auth_new_token("tr_", tok, sizeof(tok));
	auth_new_token("t_", id, 2 + 17);
	l = json_dumps(labels, JSON_COMPACT);
	store_lock(ws);
	st =
	    store_prep(ws, "INSERT INTO tokens(id, hash, uses_left, expires_at,"
	                   " labels, created_at) VALUES (?, ?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	{
		char hash[65];
		auth_hash(tok, hash);
		sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
	}
	sqlite3_bind_int64(st, 3, uses);
	sqlite3_bind_double(st, 4, now + ttl);
	sqlite3_bind_text(st, 5, l, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 6, now);
	s = sqlite3_step(st);
	store_done(st);
	store_unlock(ws);
	free(l);
	json_decref(b);
	if (s != SQLITE_DONE) {
		json_decref(labels);
		return reply_internal(r, "cannot store the token");
	}
	s = reply_json(r, 201,
	               json_pack("{s:s,s:s,s:I,s:f,s:o}", "token", tok, "id",
	                         id, "uses", (json_int_t)uses, "expires_at",
	                         now + ttl, "labels", labels));
	explicit_bzero(tok, sizeof(tok));
	return s;
}

static int tokens_list(struct req *r)
{
	struct ws *ws = r->ws;
	json_t *list = json_array();
	sqlite3_stmt *st;

	store_lock(ws);
	st = store_prep(ws,
	                "SELECT id, uses_left, expires_at, labels FROM tokens"
	                " ORDER BY created_at");
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(
		    list,
		    json_pack("{s:o,s:o,s:o,s:o}", "id", store_col_str(st, 0),
		              "uses_left", store_col_int(st, 1), "expires_at",
		              store_col_real(st, 2), "labels",
		              store_col_json(st, 3)));
	store_done(st);
	store_unlock(ws);
	return reply_json(r, 200, json_pack("{s:o}", "tokens", list));
}

static const char *agent_state(struct ws *ws, sqlite3_stmt *st)
{
	const char *s = (const char *)sqlite3_column_text(st, 3);
	double seen = sqlite3_column_double(st, 6);

	if (strcmp(s, "revoked") == 0)
		return "revoked";
	if (sqlite3_column_int(st, 12))
		return "draining";
	if (strcmp(s, "offline") == 0)
		return "offline"; /* it said it exits (drained) */
	if (ws_now() - seen > 3.0 * (double)ws->conf.poll_ms / 1000.0)
		return "lost";
	return strcmp(s, "draining") == 0 ? "draining" : "online";
}

static int agents_list(struct req *r)
{
	struct ws *ws = r->ws;
	json_t *list = json_array();
	sqlite3_stmt *st;

	store_lock(ws);
	lease_hb_flush(ws); /* last_seen as of now */
	st =
	    store_prep(ws, "SELECT id, name, labels, state, capacity, free, "
	                   "last_seen, version, transport, os, facts, running, "
	                   "drain, kernel, machine_id FROM agents ORDER BY "
	                   "created_at");
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(
		    list,
		    json_pack(
		        "{s:o,s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
		        "s:o,s:o}",
		        "id", store_col_str(st, 0), "name",
		        store_col_str(st, 1), "labels", store_col_json(st, 2),
		        "state", agent_state(ws, st), "capacity",
		        store_col_json(st, 4), "free", store_col_json(st, 5),
		        "last_seen", store_col_real(st, 6), "version",
		        store_col_str(st, 7), "transport", store_col_str(st, 8),
		        "os", store_col_str(st, 9), "facts",
		        store_col_json(st, 10), "running",
		        store_col_int(st, 11), "kernel", store_col_str(st, 13),
		        "machine_id", store_col_str(st, 14)));
	store_done(st);
	store_unlock(ws);
	return reply_json(r, 200, json_pack("{s:o}", "agents", list));
}

void agent_revoke(struct ws *ws, const char *id, bool lost_now)
{
	sqlite3_stmt *st = store_prep(ws, "UPDATE agents SET state = 'revoked' "
	                                  "WHERE id = ?");
	json_t *live = json_array(), *it;
	size_t i;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	store_done(st);
	log_info("agent %s revoked", id);
	if (!lost_now) {
		json_decref(live);
		return;
	}
	st = store_prep(ws,
	                "SELECT job, attempt FROM attempts WHERE agent_id = ? "
	                "AND state IN ('assigned','running','cancelling')");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(
		    live, json_pack("[I,I]", sqlite3_column_int64(st, 0),
		                    sqlite3_column_int64(st, 1)));
	store_done(st);
	json_array_foreach(live, i, it) sched_end_attempt(
	    ws, json_integer_value(json_array_get(it, 0)),
	    json_integer_value(json_array_get(it, 1)), "lost", true);
	json_decref(live);
}

/* The id of the agent named by segment 1 (id or name, active first). */
static bool find_agent(struct req *r, char *id, size_t size, char *name,
                       size_t nsize)
{
	sqlite3_stmt *st = store_prep(
	    r->ws, "SELECT id, name FROM agents WHERE id = ?1 OR name = ?1 "
	           "ORDER BY state = 'revoked', created_at DESC LIMIT 1");
	bool ok = false;

	sqlite3_bind_text(st, 1, r->segs[1], -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(id, size, "%s", sqlite3_column_text(st, 0));
		snprintf(name, nsize, "%s", sqlite3_column_text(st, 1));
		ok = true;
	}
	store_done(st);
	return ok;
}

static void agent_do_revoke(struct ws *ws, const char *id)
{
	agent_revoke(ws, id, false);
}

static void agent_do_drain(struct ws *ws, const char *id)
{
	sqlite3_stmt *st = store_prep(ws, "UPDATE agents SET drain = 1, "
	                                  "drain_sent = 0 WHERE id = ?");

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	store_done(st);
}

/* POST /api/v1/agents/{name}/{revoke,drain}: act on the agent under the
 * database lock, wake its parked polls, reply {done: name, id}. */
static int agent_action(struct req *r,
                        void (*act)(struct ws *ws, const char *id),
                        const char *done)
{
	struct ws *ws = r->ws;
	char id[48], name[WS_MAX_NAME + 1];
	bool found;

	store_lock(ws);
	found = find_agent(r, id, sizeof(id), name, sizeof(name));
	if (found)
		act(ws, id);
	store_unlock(ws);
	if (!found)
		return reply_error(r, 404, "not_found", NULL,
		                   "no agent '%.128s'", r->segs[1]);
	ws_notify_agent(ws, id);
	return reply_json(r, 200, json_pack("{s:s,s:s}", done, name, "id", id));
}

static int agents_revoke(struct req *r)
{
	return agent_action(r, agent_do_revoke, "revoked");
}

static int agents_drain(struct req *r)
{
	return agent_action(r, agent_do_drain, "draining");
}

/* GET /api/v1/stats: counters for tests and the bench (how many times a
 * parked long-poll was woken and its handler ran again). */
static int stats_get(struct req *r)
{
	struct ws *ws = r->ws;
	int64_t lease, log;

	wait_counts(ws, &lease, &log);
	return reply_json(
	    r, 200,
	    json_pack("{s:I,s:I,s:I,s:I}", "parked_leases", (json_int_t)lease,
	              "parked_log_reads", (json_int_t)log, "lease_wakeups",
	              (json_int_t)__atomic_load_n(&ws->lease_wakeups,
	                                          __ATOMIC_RELAXED),
	              "log_wakeups",
	              (json_int_t)__atomic_load_n(&ws->log_wakeups,
	                                          __ATOMIC_RELAXED)));
}

const struct route routes_admin[] = {
    {"GET", "stats", AUTH_ADMIN, BODY_NONE, 0, stats_get},
    {"POST", "tokens", AUTH_ADMIN, BODY_MEM, offsetof(struct ws_conf, max_body),
     tokens_create},
    {"GET", "tokens", AUTH_ADMIN, BODY_NONE, 0, tokens_list},
    {"GET", "agents", AUTH_ADMIN, BODY_NONE, 0, agents_list},
    {"DELETE", "agents/*", AUTH_ADMIN, BODY_NONE, 0, agents_revoke},
    {"POST", "agents/*/drain", AUTH_ADMIN, BODY_MEM,
     offsetof(struct ws_conf, max_body), agents_drain},
    {NULL, NULL, 0, 0, 0, NULL},
};
