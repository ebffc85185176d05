/* store.h: the workspace's store interface (store.c).  All SQL goes
 * through these: one SQLite connection (WAL, synchronous=FULL) behind one
 * mutex, the schema and its forward migrations, transactions, statement
 * and column helpers, so that a second store (PostgreSQL) can be added
 * behind the same names without touching the API code. */
#ifndef TETHER_WS_STORE_H
#define TETHER_WS_STORE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

struct err;
struct ws;

int store_open(struct ws *ws, const char *path, struct err *e);
void store_close(struct ws *ws);
void store_lock(struct ws *ws);
void store_unlock(struct ws *ws);
int store_begin(struct ws *ws);
int store_commit(struct ws *ws);
void store_rollback(struct ws *ws);
/* Prepare a statement (or take a cached one of the same SQL); aborts on
 * a programming error (bad SQL).  Give it back with store_done. */
sqlite3_stmt *store_prep(struct ws *ws, const char *sql);
/* Done with a statement from store_prep: reset and kept for reuse. */
void store_done(sqlite3_stmt *st);
/* Run a statement with no result rows; returns 0 or TERR_IO. */
int store_exec(struct ws *ws, const char *sql);
/* Column as a fresh JSON value parsed from text (NULL column -> null). */
json_t *store_col_json(sqlite3_stmt *st, int col);
/* Column as a JSON string or null. */
json_t *store_col_str(sqlite3_stmt *st, int col);
json_t *store_col_int(sqlite3_stmt *st, int col);
json_t *store_col_real(sqlite3_stmt *st, int col);

/* store-metrics.c: the metric points, in their own SQLite file (its own
 * connection and lock, never the database mutex).  apply: the batch's
 * metrics events not applied yet (by seq), in one transaction; cap rows
 * per series before buckets merge, max_series per attempt.  read: the
 * GET jobs/{id}/metrics body (rows of revision > since; att 0 and name
 * NULL: all).  jobs: the jobs with metrics; forget: delete their points
 * (returns how many jobs had some). */
int store_metrics_open(struct ws *ws, const char *path, struct err *e);
void store_metrics_close(struct ws *ws);
int store_metrics_apply(struct ws *ws, int64_t job, int64_t att, json_t *evs,
                        int64_t cap, int64_t max_series);
json_t *store_metrics_read(struct ws *ws, int64_t job, int64_t att,
                           const char *name, int64_t since);
json_t *store_metrics_jobs(struct ws *ws);
/* The highest metrics seq applied for the attempt (seq 0), or seq when that
 * one is applied (else 0).  May be called with store_lock held (the lock
 * order is store_lock, then the metrics store's). */
int64_t store_metrics_seq(struct ws *ws, int64_t job, int64_t att, int64_t seq);
int store_metrics_forget(struct ws *ws, json_t *jobs);

#endif
