/* web-api.c: API calls added for the web page (docs/protocol.md, "Viewer
 * tokens" and "Job events"): viewer tokens (create, list, revoke) and the
 * status events of a job, for its timeline. */
#include "workspace/server/web.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* No name a client sets may carry a control character into a log or a
 * table. */
static bool printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Create the viewer_tokens table once per database connection.  (Kept out
 * of the numbered migrations: CREATE ... IF NOT EXISTS is idempotent.) */
void web_tokens_ensure(struct ws *ws)
{
	static sqlite3 *done;

	if (done == ws->db)
		return;
	if (store_exec(ws,
	               "CREATE TABLE IF NOT EXISTS viewer_tokens(id TEXT "
	               "PRIMARY KEY, hash TEXT UNIQUE NOT NULL, name TEXT "
	               "NOT NULL, created_at REAL NOT NULL, expires_at REAL,"
	               " revoked INTEGER NOT NULL DEFAULT 0)") == 0)
		done = ws->db;
}

/* hash names a viewer token that is neither revoked nor expired. */
bool web_tokens_live(struct ws *ws, const char *hash)
{
	sqlite3_stmt *st;
	bool ok;

	store_lock(ws);
	web_tokens_ensure(ws);
	st = store_prep(ws, "SELECT 1 FROM viewer_tokens WHERE hash = ? AND "
	                    "revoked = 0 AND (expires_at IS NULL OR expires_at "
	                    "> ?)");
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, ws_now());
	ok = sqlite3_step(st) == SQLITE_ROW;
	store_done(st);
	store_unlock(ws);
	return ok;
}

static int store_token(struct ws *ws, const char *id, const char *hash,
                       const char *name, double now, double ttl)
{
	sqlite3_stmt *st;
	int s;

	store_lock(ws);
	web_tokens_ensure(ws);
	st = store_prep(ws, "INSERT INTO viewer_tokens(id, hash, name, "
	                    "created_at, expires_at) VALUES (?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, now);
	if (ttl > 0)
		sqlite3_bind_double(st, 5, now + ttl);
	else
		sqlite3_bind_null(st, 5);
	s = sqlite3_step(st);
	store_done(st);
	store_unlock(ws);
	return s == SQLITE_DONE ? 0 : TERR_IO;
}

static int viewer_create(struct req *r)
{
	json_t *b = NULL, *exp;
	struct err e = {0};
	const char *name = "viewer";
	double ttl = 0, now = ws_now();
	char tok[80], id[40], hash[65], shown[WS_MAX_NAME * 2];
	int s;

	if (r->body.len == 0)
		buf_append(&r->body, "{}", 2, NULL);
	if (req_json(r, &b) < 0)
		return r->status;
	if (json_check_keys(b, "", (const char *const[]){"name", "ttl", NULL},
	                    &e) < 0 ||
	    json_get_str(b, "", "name", false, WS_MAX_NAME, &name, &e) < 0 ||
	    json_get_num(b, "", "ttl", false, 1, 10 * 365 * 86400.0, &ttl, &e) <
	        0 ||
	    (!printable(name) &&
	     err_set(&e, TERR_INVAL,
	             "name: control characters are not allowed") < 0)) {
		s = reply_err(r, &e);
		json_decref(b);
		return s;
	}
	auth_new_token("tv_", tok, sizeof(tok));
	auth_new_token("v_", id, 2 + 17);
	auth_hash(tok, hash);
	if (store_token(r->ws, id, hash, name, now, ttl) < 0) {
		json_decref(b);
		return reply_internal(r, "cannot store the viewer token");
	}
	log_info("viewer token %s created name=\"%s\"", id,
	         str_escape(name, shown, sizeof(shown)));
	exp = ttl > 0 ? json_real(now + ttl) : json_null();
	s = reply_json(r, 201,
	               json_pack("{s:s,s:s,s:s,s:f,s:o}", "token", tok, "id",
	                         id, "name", name, "created_at", now,
	                         "expires_at", exp));
	explicit_bzero(tok, sizeof(tok));
	json_decref(b);
	return s;
}

static int viewer_list(struct req *r)
{
	struct ws *ws = r->ws;
	json_t *list = json_array();
	sqlite3_stmt *st;

	store_lock(ws);
	web_tokens_ensure(ws);
	st = store_prep(ws, "SELECT id, name, created_at, expires_at, revoked "
	                    "FROM viewer_tokens ORDER BY created_at");
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(
		    list, json_pack("{s:o,s:o,s:o,s:o,s:b}", "id",
		                    store_col_str(st, 0), "name",
		                    store_col_str(st, 1), "created_at",
		                    store_col_real(st, 2), "expires_at",
		                    store_col_real(st, 3), "revoked",
		                    sqlite3_column_int(st, 4)));
	store_done(st);
	store_unlock(ws);
	return reply_json(r, 200, json_pack("{s:o}", "viewer_tokens", list));
}

static int viewer_revoke(struct req *r)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	char shown[200];
	int changed;

	store_lock(ws);
	web_tokens_ensure(ws);
	st =
	    store_prep(ws, "UPDATE viewer_tokens SET revoked = 1 WHERE id = ?");
	sqlite3_bind_text(st, 1, r->segs[1], -1, SQLITE_STATIC);
	sqlite3_step(st);
	store_done(st);
	changed = sqlite3_changes(ws->db);
	store_unlock(ws);
	if (changed == 0)
		return reply_error(r, 404, "not_found", NULL,
		                   "no viewer token '%s'",
		                   str_escape(r->segs[1], shown, 80));
	log_info("viewer token \"%s\" revoked",
	         str_escape(r->segs[1], shown, sizeof(shown)));
	return reply_json(r, 200, json_pack("{s:s}", "revoked", r->segs[1]));
}

static bool job_exists(struct ws *ws, int64_t id)
{
	sqlite3_stmt *st = store_prep(ws, "SELECT 1 FROM jobs WHERE id = ?");
	bool ok;

	sqlite3_bind_int64(st, 1, id);
	ok = sqlite3_step(st) == SQLITE_ROW;
	store_done(st);
	return ok;
}

/* One stored event, with its attempt added. */
static json_t *event_json(sqlite3_stmt *st)
{
	json_t *ev = store_col_json(st, 1);

	if (!json_is_object(ev)) {
		json_decref(ev);
		ev = json_object();
	}
	json_object_set_new(ev, "attempt", store_col_int(st, 0));
	return ev;
}

/* GET jobs/{id}/events[?attempt=N]: the status events, oldest first. */
static int job_events(struct req *r)
{
	struct ws *ws = r->ws;
	json_t *list = json_array();
	sqlite3_stmt *st;
	int64_t id, att;
	bool found;

	if (req_seg_id(r, 1, &id) < 0 ||
	    req_arg_i64(r, "attempt", 1, INT64_MAX, 0, &att) < 0) {
		json_decref(list);
		return r->status;
	}
	store_lock(ws);
	found = job_exists(ws, id);
	st = store_prep(ws,
	                "SELECT attempt, body FROM events WHERE job = ?1 AND "
	                "(?2 = 0 OR attempt = ?2) ORDER BY attempt, seq "
	                "LIMIT 10000");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, att);
	while (found && sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(list, event_json(st));
	store_done(st);
	store_unlock(ws);
	if (!found) {
		json_decref(list);
		return reply_error(r, 404, "not_found", NULL, "no job %lld",
		                   (long long)id);
	}
	return reply_json(r, 200, json_pack("{s:o}", "events", list));
}

const struct route routes_web[] = {
    {"POST", "viewer-tokens", AUTH_ADMIN, BODY_MEM,
     offsetof(struct ws_conf, max_body), viewer_create},
    {"GET", "viewer-tokens", AUTH_ADMIN, BODY_NONE, 0, viewer_list},
    {"DELETE", "viewer-tokens/*", AUTH_ADMIN, BODY_NONE, 0, viewer_revoke},
    {"GET", "jobs/*/events", AUTH_ADMIN, BODY_NONE, 0, job_events},
    {NULL, NULL, 0, 0, 0, NULL},
};
