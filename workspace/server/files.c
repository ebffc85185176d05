/* files.c: source snapshots (upload by the CLI, download by the agent)
 * and job outputs (list and download by admins).  File bytes live in
 * blobs/<sha256>; the database maps names to them. */
#include "workspace/server/http.h"
#include "common/log.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_hex64(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static int send_blob(struct req *r, const char *hex)
{
	char *path = xasprintf("%s/blobs/%s", r->ws->dir, hex);
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	free(path);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		if (fd >= 0)
			close(fd);
		return reply_error(r, 404, "not_found", NULL,
		                   "the file's bytes are gone (retention)");
	}
	reply_fd(r, 200, fd, sb.st_size);
	reply_header(r, "Tether-Sha256", hex);
	return 200;
}

static int snapshots_upload(struct req *r)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	char hex[65];
	int s;

	if (req_body_file(r, hex) < 0 || blob_store(r, hex) < 0)
		return reply_internal(r, "cannot store the snapshot");
	store_lock(ws);
	st = store_prep(ws, "INSERT OR IGNORE INTO snapshots(id, size, "
	                    "created_at) VALUES (?, ?, ?)");
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->size);
	sqlite3_bind_double(st, 3, ws_now());
	s = sqlite3_step(st);
	store_done(st);
	store_unlock(ws);
	if (s != SQLITE_DONE)
		return reply_internal(r, "cannot record the snapshot");
	return reply_json(
	    r, 201,
	    json_pack("{s:s,s:I}", "id", hex, "size", (json_int_t)r->size));
}

static int snapshots_get(struct req *r)
{
	struct ws *ws = r->ws;
	const char *id = r->segs[1];
	sqlite3_stmt *st;
	bool ok;

	if (!is_hex64(id))
		return reply_error(r, 404, "not_found", NULL,
		                   "no snapshot '%.80s'", id);
	store_lock(ws);
	if (r->is_admin) {
		st = store_prep(ws,
		                "SELECT 1 FROM snapshots WHERE id = ?1 UNION "
		                "SELECT 1 FROM checkpoints WHERE sha256 = ?1");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	} else {
		/* a snapshot, or a checkpoint of the job (the resume
		 * pointer), of a job given to this agent */
		st = store_prep(ws, "SELECT 1 FROM jobs j JOIN attempts a ON "
		                    "a.job = j.id WHERE (j.snapshot = ?1 OR "
		                    "EXISTS (SELECT 1 FROM checkpoints c WHERE "
		                    "c.job = j.id AND c.sha256 = ?1)) AND "
		                    "a.agent_id = ?2 LIMIT 1");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->agent_id, -1, SQLITE_STATIC);
	}
	ok = sqlite3_step(st) == SQLITE_ROW;
	store_done(st);
	store_unlock(ws);
	if (!ok)
		return reply_error(r, 404, "not_found", NULL,
		                   "no snapshot '%s' for this caller", id);
	return send_blob(r, id);
}

/* The attempt to show: ?attempt=N, else the job's latest. */
static int pick_attempt(struct req *r, int64_t job, int64_t *att)
{
	sqlite3_stmt *st;
	int64_t want;
	bool found = false;

	if (req_arg_i64(r, "attempt", 1, INT64_MAX, 0, &want) < 0)
		return -1;
	st = store_prep(r->ws, "SELECT attempt FROM jobs WHERE id = ?");
	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW) {
		found = true;
		*att = want ? want : sqlite3_column_int64(st, 0);
	}
	store_done(st);
	if (!found) {
		reply_error(r, 404, "not_found", NULL, "no job %lld",
		            (long long)job);
		return -1;
	}
	return 0;
}

static int outputs_list(struct req *r)
{
	struct ws *ws = r->ws;
	json_t *list = json_array();
	sqlite3_stmt *st;
	int64_t job, att = 0;

	if (req_seg_id(r, 1, &job) < 0) {
		json_decref(list);
		return r->status;
	}
	store_lock(ws);
	if (pick_attempt(r, job, &att) < 0) {
		store_unlock(ws);
		json_decref(list);
		return r->status;
	}
	st = store_prep(ws,
	                "SELECT path, size, sha256 FROM outputs WHERE job = ?"
	                " AND attempt = ? ORDER BY path");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(list,
		                      json_pack("{s:o,s:o,s:o}", "path",
		                                store_col_str(st, 0), "size",
		                                store_col_int(st, 1), "sha256",
		                                store_col_str(st, 2)));
	store_done(st);
	store_unlock(ws);
	return reply_json(r, 200,
	                  json_pack("{s:o,s:I}", "outputs", list, "attempt",
	                            (json_int_t)att));
}

static int outputs_get(struct req *r)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	char hex[65] = "";
	int64_t job, att = 0;

	if (req_seg_id(r, 1, &job) < 0)
		return r->status;
	store_lock(ws);
	if (pick_attempt(r, job, &att) < 0) {
		store_unlock(ws);
		return r->status;
	}
	st = store_prep(ws, "SELECT sha256 FROM outputs WHERE job = ? AND "
	                    "attempt = ? AND path = ?");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_text(st, 3, r->rest, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(hex, sizeof(hex), "%s", sqlite3_column_text(st, 0));
	store_done(st);
	store_unlock(ws);
	if (hex[0] == '\0')
		return reply_error(
		    r, 404, "not_found", "path",
		    "no output '%.200s' in job %lld attempt %lld", r->rest,
		    (long long)job, (long long)att);
	return send_blob(r, hex);
}

const struct route routes_files[] = {
    {"POST", "snapshots", AUTH_ADMIN, BODY_FILE,
     offsetof(struct ws_conf, max_snapshot), snapshots_upload},
    {"GET", "snapshots/*", AUTH_ANY, BODY_NONE, 0, snapshots_get},
    {"GET", "jobs/*/outputs", AUTH_ADMIN, BODY_NONE, 0, outputs_list},
    {"GET", "jobs/*/outputs/**", AUTH_ADMIN, BODY_NONE, 0, outputs_get},
    {NULL, NULL, 0, 0, 0, NULL},
};
