/* checkpoint.c: checkpoints and progress (docs/checkpointing.md).
 *
 * An agent uploads an attempt's checkpoint (a gzip tar of the job's
 * $TETHER_CHECKPOINTS) with PUT /attempts/J/A/checkpoint before it sends
 * the attempt's final event.  The body goes to a temp file; only when its
 * sha256 matches the Tether-Sha256 header is it moved into blobs/ and
 * recorded, so a half upload is never a checkpoint.  The job's newest
 * checkpoint is the resume pointer given with its next attempt (lease
 * reply `checkpoint`) and downloaded with GET /snapshots/{id}.  Progress
 * values come from `progress` events and the final event. */
#include "workspace/server/http.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

json_t *checkpoint_of_job(struct ws *ws, int64_t job)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT sha256, size, attempt, created_at FROM checkpoints "
	        "WHERE job = ? ORDER BY attempt DESC LIMIT 1");
	json_t *c = json_null();

	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW) {
		json_decref(c);
		c = json_pack("{s:o,s:o,s:o,s:o}", "id", store_col_str(st, 0),
		              "size", store_col_int(st, 1), "attempt",
		              store_col_int(st, 2), "created_at",
		              store_col_real(st, 3));
	}
	store_done(st);
	return c;
}

int checkpoint_give(struct ws *ws, int64_t job, json_t *ck)
{
	sqlite3_stmt *st = store_prep(
	    ws, "INSERT INTO checkpoints(job, attempt, sha256, size, "
	        "created_at) VALUES (?, 0, ?, ?, ?)");
	int rc;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_text(st, 2, json_string_value(json_object_get(ck, "id")),
	                  -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3,
	                   json_integer_value(json_object_get(ck, "size")));
	sqlite3_bind_double(
	    st, 4, json_number_value(json_object_get(ck, "created_at")));
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : TERR_IO;
	store_done(st);
	return rc;
}

json_t *checkpoint_of_attempt(struct ws *ws, int64_t job, int64_t att)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT sha256, size FROM checkpoints "
	                   "WHERE job = ? AND attempt = ?");
	json_t *c = json_null();

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	if (sqlite3_step(st) == SQLITE_ROW) {
		json_decref(c);
		c = json_pack("{s:o,s:o}", "sha256", store_col_str(st, 0),
		              "size", store_col_int(st, 1));
	}
	store_done(st);
	return c;
}

json_t *checkpoint_progress(struct ws *ws, int64_t job, int64_t att)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT value FROM progress WHERE job = "
	                   "? AND attempt = ?");
	json_t *v = json_null();

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	if (sqlite3_step(st) == SQLITE_ROW) {
		json_decref(v);
		v = store_col_real(st, 0);
	}
	store_done(st);
	return v;
}

void checkpoint_note_progress(struct ws *ws, int64_t job, int64_t att,
                              json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *v = json_object_get(ev, strcmp(type, "final") == 0 ? "progress"
	                                                           : "value");
	sqlite3_stmt *st;

	if (!json_is_number(v))
		return;
	st = store_prep(ws, "INSERT OR REPLACE INTO progress(job, attempt, "
	                    "value, updated_at) VALUES (?, ?, ?, ?)");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_double(st, 3, json_number_value(v));
	sqlite3_bind_double(st, 4, ws_now());
	sqlite3_step(st);
	store_done(st);
}

/* Before the body: the header and the attempt. */
static int checkpoint_pre(struct req *r)
{
	int64_t job, att;

	return upload_pre(r, &job, &att);
}

static int checkpoint_record(struct ws *ws, int64_t job, int64_t att,
                             const char *hex, int64_t size, const char *agent)
{
	sqlite3_stmt *st;
	int rc;

	store_lock(ws);
	rc = sched_attempt_check(ws, job, att, agent);
	if (rc == 0) {
		st = store_prep(ws, "INSERT OR REPLACE INTO checkpoints(job, "
		                    "attempt, sha256, size, created_at) VALUES "
		                    "(?,?,?,?,?)");
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_int64(st, 2, att);
		sqlite3_bind_text(st, 3, hex, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, size);
		sqlite3_bind_double(st, 5, ws_now());
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : TERR_IO;
		store_done(st);
	}
	store_unlock(ws);
	return rc;
}

static int checkpoint_put(struct req *r)
{
	char hex[65];
	int64_t job, att;
	int rc;

	if (upload_pre(r, &job, &att) != 0 ||
	    upload_store(r, hex, "cannot store the checkpoint") != 0)
		return r->status;
	rc = checkpoint_record(r->ws, job, att, hex, r->size, r->agent_id);
	if (rc == TERR_NOTFOUND || rc == TERR_CONFLICT)
		return reply_attempt_error(r, rc, job, att);
	if (rc < 0)
		return reply_internal(r, "cannot record the checkpoint");
	log_info("job=%lld attempt=%lld checkpoint %.12s (%lld bytes)",
	         (long long)job, (long long)att, hex, (long long)r->size);
	return reply_json(r, 201,
	                  json_pack("{s:I,s:I,s:s,s:I}", "job", (json_int_t)job,
	                            "attempt", (json_int_t)att, "sha256", hex,
	                            "size", (json_int_t)r->size));
}

const struct route routes_checkpoint[] = {
    {"PUT", "attempts/*/*/checkpoint", AUTH_AGENT, BODY_FILE,
     offsetof(struct ws_conf, max_output), checkpoint_put, checkpoint_pre},
    {NULL, NULL, 0, 0, 0, NULL},
};
