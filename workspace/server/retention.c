/* retention.c: forget what is old.  Logs of jobs that ended more than
 * log_retention ago are deleted (their attempts' log_length becomes 0, then
 * their files go);
 * outputs of jobs that ended more than output_retention ago are deleted,
 * and snapshots older than that which no unfinished job uses; checkpoints
 * (and progress values) go with the outputs.  A blob
 * file goes when no output or snapshot names it any more.  Metric points go
 * with the logs (metrics.c). */
#include "workspace/server/ws.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <unistd.h>

static int run_bound(struct ws *ws, const char *sql, double before)
{
	sqlite3_stmt *st = store_prep(ws, sql);
	int n;

	sqlite3_bind_double(st, 1, before);
	n = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(ws->db) : -1;
	store_done(st);
	return n;
}

/* Blob names no row refers to any more, collected before they go. */
static json_t *orphans(struct ws *ws, const char *candidates, double before)
{
	sqlite3_stmt *st = store_prep(ws, candidates);
	json_t *list = json_array();

	sqlite3_bind_double(st, 1, before);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(list, store_col_str(st, 0));
	store_done(st);
	return list;
}

static void unlink_unused(struct ws *ws, json_t *names)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT (SELECT count(*) FROM outputs WHERE sha256 = ?1) + "
	        "(SELECT count(*) FROM snapshots WHERE id = ?1) + "
	        "(SELECT count(*) FROM checkpoints WHERE sha256 = ?1)");
	size_t i;
	json_t *v;

	json_array_foreach(names, i, v)
	{
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, json_string_value(v), -1,
		                  SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_int(st, 0) == 0) {
			char *p = xasprintf("%s/blobs/%s", ws->dir,
			                    json_string_value(v));
			unlink(p);
			free(p);
		}
	}
	store_done(st);
}

int retention_sweep(struct ws *ws)
{
	double now = ws_now();
	double logs_before = now - (double)ws->conf.log_retention_ms / 1000.0;
	double outs_before =
	    now - (double)ws->conf.output_retention_ms / 1000.0;
	json_t *blobs = NULL, *snaps = NULL, *ckpts = NULL, *logs = NULL;
	size_t i;
	json_t *v;
	int n = 0;

	store_lock(ws);
	if (store_begin(ws) < 0)
		goto out;
	logs = orphans(ws,
	               "SELECT DISTINCT job FROM attempts WHERE log_length > 0 "
	               "AND job IN (SELECT id FROM jobs WHERE ended_at IS NOT "
	               "NULL AND ended_at < ?)",
	               logs_before);
	n += (int)json_array_size(logs);
	run_bound(ws,
	          "DELETE FROM log_chunks WHERE job IN (SELECT id FROM "
	          "jobs WHERE ended_at IS NOT NULL AND ended_at < ?)",
	          logs_before);
	run_bound(ws,
	          "UPDATE attempts SET log_length = 0 WHERE log_length > 0 AND "
	          "job IN (SELECT id FROM jobs WHERE ended_at IS NOT NULL AND "
	          "ended_at < ?)",
	          logs_before);
	blobs = orphans(ws,
	                "SELECT DISTINCT sha256 FROM outputs WHERE job IN "
	                "(SELECT id FROM jobs WHERE ended_at IS NOT NULL AND "
	                "ended_at < ?)",
	                outs_before);
	n += run_bound(ws,
	               "DELETE FROM outputs WHERE job IN (SELECT id FROM jobs "
	               "WHERE ended_at IS NOT NULL AND ended_at < ?)",
	               outs_before);
	ckpts = orphans(ws,
	                "SELECT DISTINCT sha256 FROM checkpoints WHERE job IN "
	                "(SELECT id FROM jobs WHERE ended_at IS NOT NULL AND "
	                "ended_at < ?)",
	                outs_before);
	n += run_bound(ws,
	               "DELETE FROM checkpoints WHERE job IN (SELECT id FROM "
	               "jobs WHERE ended_at IS NOT NULL AND ended_at < ?)",
	               outs_before);
	run_bound(ws,
	          "DELETE FROM progress WHERE job IN (SELECT id FROM jobs "
	          "WHERE ended_at IS NOT NULL AND ended_at < ?)",
	          outs_before);
	snaps = orphans(ws,
	                "SELECT id FROM snapshots WHERE created_at < ?1 AND id "
	                "NOT IN (SELECT snapshot FROM jobs WHERE snapshot IS "
	                "NOT NULL AND (ended_at IS NULL OR ended_at >= ?1))",
	                outs_before);
	n += run_bound(ws,
	               "DELETE FROM snapshots WHERE created_at < ?1 AND id NOT "
	               "IN (SELECT snapshot FROM jobs WHERE snapshot IS NOT "
	               "NULL AND (ended_at IS NULL OR ended_at >= ?1))",
	               outs_before);
	if (store_commit(ws) < 0) {
		store_rollback(ws);
		goto out;
	}
	json_array_foreach(logs, i, v)
	{
		char *p = log_path(ws, atoll(json_string_value(v)), 0);
		rm_rf(p, NULL);
		free(p);
	}
	unlink_unused(ws, blobs);
	unlink_unused(ws, snaps);
	unlink_unused(ws, ckpts);
	if (n > 0)
		log_info("retention: %d rows deleted", n);
out:
	store_unlock(ws);
	json_decref(logs);
	json_decref(blobs);
	json_decref(snaps);
	json_decref(ckpts);
	metrics_retention(ws, logs_before);
	return n;
}
