/* store-metrics.c: the store of the jobs' metric points (docs/protocol.md,
 * "Metrics").  Its own SQLite file beside the database (metrics.db), with
 * its own connection and mutex, so that a job printing many points never
 * holds the database mutex that leases, events and log reads take, and the
 * points never grow the database the backups copy.
 *
 * Invariant: each metrics event (job, attempt, seq) is applied once: the
 * `applied` row and its points commit in one transaction, so a retry of an
 * event already applied changes nothing.  A series (job, attempt, name)
 * keeps every point until it holds `cap` rows; then neighbouring rows are
 * merged pairwise and the bucket width doubles, so each row is a bucket of
 * `width` points keeping the last point (step, time, value) and the
 * bucket's min and max.  Every row written gets the store's next revision;
 * a reader asks for the rows of revision > since. */
#include "workspace/server/store.h"
#include "workspace/server/ws.h"
#include "common/log.h"
#include "common/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
	Q_APPLIED,
	Q_APPLY,
	Q_SERIES_GET,
	Q_SERIES_NEW,
	Q_SERIES_SET,
	Q_SERIES_COUNT,
	Q_LAST_ROW,
	Q_ROW_ADD,
	Q_ROW_JOIN,
	Q_ROWS_ALL,
	Q_ROWS_DEL,
	Q_REV_SET,
	Q_READ_SERIES,
	Q_READ_ROWS,
	Q_READ_STATS,
	Q_DROPPED,
	Q_JOBS,
	Q_FORGET_ROWS,
	Q_FORGET_SERIES,
	Q_FORGET_APPLIED,
	Q_MAX_SEQ,
	Q_READ_NSERIES,
	Q_COUNT
};

static const char *const sql[Q_COUNT] = {
    [Q_APPLIED] = "SELECT 1 FROM applied WHERE job = ? AND attempt = ? AND "
                  "seq = ?",
    [Q_APPLY] = "INSERT INTO applied(job, attempt, seq, points, dropped) "
                "VALUES (?,?,?,?,?)",
    [Q_SERIES_GET] = "SELECT id, count, width, nrows FROM series WHERE job "
                     "= ? AND attempt = ? AND name = ?",
    [Q_SERIES_NEW] = "INSERT INTO series(job, attempt, name, count, width, "
                     "nrows) VALUES (?,?,?,0,1,0)",
    [Q_SERIES_SET] = "UPDATE series SET count = ?, width = ?, nrows = ? "
                     "WHERE id = ?",
    [Q_SERIES_COUNT] = "SELECT count(*) FROM series WHERE job = ? AND "
                       "attempt = ?",
    [Q_LAST_ROW] = "SELECT start, n FROM points WHERE series = ? ORDER BY "
                   "start DESC LIMIT 1",
    [Q_ROW_ADD] = "INSERT INTO points(series, start, n, step, time, value, "
                  "min, max, rev) VALUES (?,?,?,?,?,?,?,?,?)",
    [Q_ROW_JOIN] = "UPDATE points SET n = n + 1, step = ?, time = ?, value "
                   "= ?, min = min(min, ?3), max = max(max, ?3), rev = ? "
                   "WHERE series = ? AND start = ?",
    [Q_ROWS_ALL] = "SELECT start, n, step, time, value, min, max FROM "
                   "points WHERE series = ? ORDER BY start",
    [Q_ROWS_DEL] = "DELETE FROM points WHERE series = ?",
    [Q_REV_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES "
                  "('rev', ?)",
    [Q_READ_SERIES] = "SELECT id, attempt, name, count, width FROM series "
                      "WHERE job = ?1 AND (?2 = 0 OR attempt = ?2) AND (?3 "
                      "IS NULL OR name = ?3) ORDER BY name, attempt",
    [Q_READ_ROWS] = "SELECT start, n, step, time, value, min, max, rev FROM "
                    "points WHERE series = ? AND rev > ? ORDER BY start",
    [Q_READ_STATS] = "SELECT min(min), max(max), max(rev) FROM points WHERE "
                     "series = ?",
    [Q_DROPPED] = "SELECT coalesce(sum(dropped), 0) FROM applied WHERE job "
                  "= ?1 AND (?2 = 0 OR attempt = ?2)",
    [Q_JOBS] = "SELECT DISTINCT job FROM applied",
    [Q_FORGET_ROWS] = "DELETE FROM points WHERE series IN (SELECT id FROM "
                      "series WHERE job = ?)",
    [Q_FORGET_SERIES] = "DELETE FROM series WHERE job = ?",
    [Q_FORGET_APPLIED] = "DELETE FROM applied WHERE job = ?",
    [Q_READ_NSERIES] = "SELECT count(*) FROM series WHERE job = ?1 AND (?2 = "
                       "0 OR attempt = ?2) AND (?3 IS NULL OR name = ?3)",
    [Q_MAX_SEQ] = "SELECT coalesce(max(seq), 0) FROM applied WHERE job = ? "
                  "AND attempt = ? AND (?3 = 0 OR seq = ?3)",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS applied(job INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " points INTEGER NOT NULL, dropped INTEGER NOT NULL,"
    " PRIMARY KEY(job, attempt, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY,"
    " job INTEGER NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,"
    " count INTEGER NOT NULL, width INTEGER NOT NULL,"
    " nrows INTEGER NOT NULL, UNIQUE(job, attempt, name));"
    "CREATE TABLE IF NOT EXISTS points(series INTEGER NOT NULL,"
    " start INTEGER NOT NULL, n INTEGER NOT NULL, step INTEGER,"
    " time REAL NOT NULL, value REAL NOT NULL, min REAL NOT NULL,"
    " max REAL NOT NULL, rev INTEGER NOT NULL,"
    " PRIMARY KEY(series, start)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

#define MAX_REPLY_ROWS 200000 /* rows in one read, over all its series */

/* One connection with its lock and statements.  The store has three,
 * so that nothing waits behind a writer: the writer (apply, retention),
 * the seq lookups that post_events makes with the database lock held
 * (`seqs`: never behind a long read or a write waiting for its file lock),
 * and the API reads (`reads`; WAL: readers never wait for the writer). */
struct mstore {
	sqlite3 *db;
	pthread_mutex_t mu;
	sqlite3_stmt *q[Q_COUNT];
	int64_t rev;
	struct mstore *seqs, *reads;
};

/* A series being written by one apply call. */
struct mseries {
	int64_t id, count, width, nrows, last_start, last_n;
	char name[WS_MAX_NAME + 1];
};

static sqlite3_stmt *q(struct mstore *m, int i)
{
	sqlite3_reset(m->q[i]);
	sqlite3_clear_bindings(m->q[i]);
	return m->q[i];
}

static int mexec(struct mstore *m, const char *s)
{
	char *msg = NULL;

	if (sqlite3_exec(m->db, s, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	log_error("metrics sql '%.60s': %s", s, msg ? msg : "?");
	sqlite3_free(msg);
	return TERR_IO;
}

static void conn_free(struct mstore *m)
{
	if (m == NULL)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(m->q[i]);
	sqlite3_close(m->db);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Open one connection (the first creates the schema) into *out. */
static int conn_open(const char *path, bool first, struct mstore **out,
                     struct err *e)
{
	struct mstore *m = xcalloc(1, sizeof(*m));
	int i, r = 0;

	pthread_mutex_init(&m->mu, NULL);
	*out = m;
	if (sqlite3_open_v2(path, &m->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                        SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK)
		return err_set(e, TERR_IO, "open metrics database %s: %s", path,
		               m->db ? sqlite3_errmsg(m->db) : "no memory");
	sqlite3_busy_timeout(m->db, 5000);
	if (mexec(m, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL") < 0 ||
	    (first && mexec(m, schema) < 0))
		return err_set(e, TERR_IO, "metrics database %s: %s", path,
		               sqlite3_errmsg(m->db));
	for (i = 0; i < Q_COUNT; i++)
		if (sqlite3_prepare_v3(m->db, sql[i], -1,
		                       SQLITE_PREPARE_PERSISTENT, &m->q[i],
		                       NULL) != SQLITE_OK)
			fatalx("prepare '%s': %s", sql[i],
			       sqlite3_errmsg(m->db));
	return r;
}

int store_metrics_open(struct ws *ws, const char *path, struct err *e)
{
	struct mstore *m;
	sqlite3_stmt *st;
	int r;

	r = conn_open(path, true, &ws->mstore, e);
	m = ws->mstore;
	if (r < 0 || (r = conn_open(path, false, &m->seqs, e)) < 0 ||
	    (r = conn_open(path, false, &m->reads, e)) < 0)
		return r;
	if (sqlite3_prepare_v2(m->db,
	                       "SELECT value FROM meta WHERE key = 'rev'", -1,
	                       &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		m->rev = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

void store_metrics_close(struct ws *ws)
{
	struct mstore *m = ws->mstore;

	if (m == NULL)
		return;
	conn_free(m->seqs);
	conn_free(m->reads);
	conn_free(m);
	ws->mstore = NULL;
}

static bool step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

/* Find or create the series; NULL when the attempt has max_series
 * already (its points are dropped) or on a store error (*rc). */
static struct mseries *series_get(struct mstore *m, struct mseries **list,
                                  size_t *n, int64_t job, int64_t att,
                                  const char *name, int64_t max_series, int *rc)
{
	struct mseries *s;
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*list)[i].name, name) == 0)
			return &(*list)[i];
	if ((*n & (*n - 1)) == 0) { /* grow at powers of two */
		struct mseries *g = xcalloc(*n ? *n * 2 : 1, sizeof(**list));
		if (*n > 0)
			memcpy(g, *list, *n * sizeof(**list));
		free(*list);
		*list = g;
	}
	s = &(*list)[*n];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	st = q(m, Q_SERIES_GET);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		s->id = sqlite3_column_int64(st, 0);
		s->count = sqlite3_column_int64(st, 1);
		s->width = sqlite3_column_int64(st, 2);
		s->nrows = sqlite3_column_int64(st, 3);
		sqlite3_reset(st);
		st = q(m, Q_LAST_ROW);
		sqlite3_bind_int64(st, 1, s->id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			s->last_start = sqlite3_column_int64(st, 0);
			s->last_n = sqlite3_column_int64(st, 1);
		}
		sqlite3_reset(st);
		(*n)++;
		return s;
	}
	sqlite3_reset(st);
	st = q(m, Q_SERIES_COUNT);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_int64(st, 0) >= max_series) {
		sqlite3_reset(st);
		return NULL;
	}
	sqlite3_reset(st);
	st = q(m, Q_SERIES_NEW);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	if (!step_done(st)) {
		*rc = TERR_IO;
		return NULL;
	}
	s->id = sqlite3_last_insert_rowid(m->db);
	s->width = 1;
	(*n)++;
	return s;
}

struct mrow {
	int64_t start, n, step;
	bool has_step;
	double time, value, min, max;
};

/* Merge neighbouring rows pairwise and double the width. */
static int series_compact(struct mstore *m, struct mseries *s)
{
	struct mrow *rows = xcalloc((size_t)s->nrows + 1, sizeof(*rows));
	sqlite3_stmt *st = q(m, Q_ROWS_ALL);
	int64_t n = 0, k = 0, i;
	int rc = 0;

	sqlite3_bind_int64(st, 1, s->id);
	while (n <= s->nrows && sqlite3_step(st) == SQLITE_ROW) {
		struct mrow *r = &rows[n++];
		r->start = sqlite3_column_int64(st, 0);
		r->n = sqlite3_column_int64(st, 1);
		r->has_step = sqlite3_column_type(st, 2) != SQLITE_NULL;
		r->step = sqlite3_column_int64(st, 2);
		r->time = sqlite3_column_double(st, 3);
		r->value = sqlite3_column_double(st, 4);
		r->min = sqlite3_column_double(st, 5);
		r->max = sqlite3_column_double(st, 6);
	}
	sqlite3_reset(st);
	for (i = 0; i < n; i += 2, k++) {
		rows[k] = rows[i];
		if (i + 1 < n) {
			struct mrow *b = &rows[i + 1];
			rows[k].n += b->n;
			rows[k].has_step = b->has_step;
			rows[k].step = b->step;
			rows[k].time = b->time;
			rows[k].value = b->value;
			rows[k].min = fmin(rows[k].min, b->min);
			rows[k].max = fmax(rows[k].max, b->max);
		}
	}
	st = q(m, Q_ROWS_DEL);
	sqlite3_bind_int64(st, 1, s->id);
	if (!step_done(st))
		rc = TERR_IO;
	for (i = 0; rc == 0 && i < k; i++) {
		st = q(m, Q_ROW_ADD);
		sqlite3_bind_int64(st, 1, s->id);
		sqlite3_bind_int64(st, 2, rows[i].start);
		sqlite3_bind_int64(st, 3, rows[i].n);
		if (rows[i].has_step)
			sqlite3_bind_int64(st, 4, rows[i].step);
		sqlite3_bind_double(st, 5, rows[i].time);
		sqlite3_bind_double(st, 6, rows[i].value);
		sqlite3_bind_double(st, 7, rows[i].min);
		sqlite3_bind_double(st, 8, rows[i].max);
		sqlite3_bind_int64(st, 9, m->rev);
		if (!step_done(st))
			rc = TERR_IO;
	}
	if (k > 0) {
		s->last_start = rows[k - 1].start;
		s->last_n = rows[k - 1].n;
	}
	s->nrows = k;
	s->width *= 2;
	free(rows);
	return rc;
}

/* Add one point to its series: into the last bucket while it has room,
 * else as a new row; compact past cap rows. */
static int series_add(struct mstore *m, struct mseries *s, json_t *p,
                      double def_time, int64_t cap)
{
	json_t *step = json_object_get(p, "step");
	json_t *tm = json_object_get(p, "time");
	double v = json_number_value(json_object_get(p, "value"));
	double t = json_is_number(tm) ? json_number_value(tm) : def_time;
	sqlite3_stmt *st;

	if (s->nrows > 0 && s->last_n < s->width) {
		st = q(m, Q_ROW_JOIN);
		if (json_is_integer(step))
			sqlite3_bind_int64(st, 1, json_integer_value(step));
		sqlite3_bind_double(st, 2, t);
		sqlite3_bind_double(st, 3, v);
		sqlite3_bind_int64(st, 4, m->rev);
		sqlite3_bind_int64(st, 5, s->id);
		sqlite3_bind_int64(st, 6, s->last_start);
		s->last_n++;
	} else {
		st = q(m, Q_ROW_ADD);
		sqlite3_bind_int64(st, 1, s->id);
		sqlite3_bind_int64(st, 2, s->count);
		sqlite3_bind_int64(st, 3, 1);
		if (json_is_integer(step))
			sqlite3_bind_int64(st, 4, json_integer_value(step));
		sqlite3_bind_double(st, 5, t);
		sqlite3_bind_double(st, 6, v);
		sqlite3_bind_double(st, 7, v);
		sqlite3_bind_double(st, 8, v);
		sqlite3_bind_int64(st, 9, m->rev);
		s->last_start = s->count;
		s->last_n = 1;
		s->nrows++;
	}
	s->count++;
	if (!step_done(st))
		return TERR_IO;
	return s->nrows > cap ? series_compact(m, s) : 0;
}

/* Apply one metrics event unless applied already. */
static int apply_one(struct mstore *m, int64_t job, int64_t att, json_t *ev,
                     int64_t cap, int64_t max_series)
{
	json_t *pts = json_object_get(ev, "points");
	json_t *tm = json_object_get(ev, "time");
	double def_time = json_is_number(tm) ? json_number_value(tm) : ws_now();
	int64_t seq = json_integer_value(json_object_get(ev, "seq"));
	int64_t dropped = json_integer_value(json_object_get(ev, "dropped"));
	struct mseries *list = NULL;
	sqlite3_stmt *st = q(m, Q_APPLIED);
	size_t n = 0, i;
	json_t *p;
	int rc = 0;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_int64(st, 3, seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	json_array_foreach(pts, i, p)
	{
		struct mseries *s =
		    series_get(m, &list, &n, job, att,
		               json_string_value(json_object_get(p, "name")),
		               max_series, &rc);
		if (rc < 0)
			break;
		if (s == NULL) {
			dropped++; /* over the attempt's series cap */
			continue;
		}
		if ((rc = series_add(m, s, p, def_time, cap)) < 0)
			break;
	}
	for (i = 0; rc == 0 && i < n; i++) {
		st = q(m, Q_SERIES_SET);
		sqlite3_bind_int64(st, 1, list[i].count);
		sqlite3_bind_int64(st, 2, list[i].width);
		sqlite3_bind_int64(st, 3, list[i].nrows);
		sqlite3_bind_int64(st, 4, list[i].id);
		if (!step_done(st))
			rc = TERR_IO;
	}
	free(list);
	if (rc < 0)
		return rc;
	st = q(m, Q_APPLY);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_int64(st, 3, seq);
	sqlite3_bind_int64(st, 4, (int64_t)json_array_size(pts));
	sqlite3_bind_int64(st, 5, dropped);
	return step_done(st) ? 0 : TERR_IO;
}

int store_metrics_apply(struct ws *ws, int64_t job, int64_t att, json_t *evs,
                        int64_t cap, int64_t max_series)
{
	struct mstore *m = ws->mstore;
	sqlite3_stmt *st;
	size_t i;
	json_t *ev;
	int rc;

	pthread_mutex_lock(&m->mu);
	if ((rc = mexec(m, "BEGIN IMMEDIATE")) < 0)
		goto out;
	m->rev++;
	json_array_foreach(evs, i, ev)
	{
		const char *type =
		    json_string_value(json_object_get(ev, "type"));
		if (strcmp(type, "metrics") == 0 &&
		    (rc = apply_one(m, job, att, ev, cap, max_series)) < 0)
			break;
	}
	st = q(m, Q_REV_SET);
	sqlite3_bind_int64(st, 1, m->rev);
	if (rc == 0 && !step_done(st))
		rc = TERR_IO;
	if (rc == 0)
		rc = mexec(m, "COMMIT");
	if (rc < 0) {
		if (!sqlite3_get_autocommit(m->db))
			mexec(m, "ROLLBACK");
		m->rev--;
	}
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static json_t *col_num(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	if (sqlite3_column_type(st, col) == SQLITE_INTEGER)
		return json_integer(sqlite3_column_int64(st, col));
	return json_real(sqlite3_column_double(st, col));
}

/* Rows [start, n, step, time, value, min, max] merged k at a time: the
 * first's start, the sum of n, the last's step, time and value, the min of
 * the mins and the max of the maxes. */
static json_t *rows_merge(json_t *rows, size_t k)
{
	json_t *out = json_array();
	size_t i, j, n = json_array_size(rows);

	for (i = 0; i < n; i += k) {
		json_t *first = json_array_get(rows, i),
		       *r = json_deep_copy(first);
		for (j = i + 1; j < i + k && j < n; j++) {
			json_t *b = json_array_get(rows, j);
			double lo = json_number_value(json_array_get(b, 5));
			double hi = json_number_value(json_array_get(b, 6));
			json_array_set_new(
			    r, 1,
			    json_integer(
			        json_integer_value(json_array_get(r, 1)) +
			        json_integer_value(json_array_get(b, 1))));
			for (int c = 2; c <= 4; c++)
				json_array_set(r, c, json_array_get(b, c));
			if (lo < json_number_value(json_array_get(r, 5)))
				json_array_set(r, 5, json_array_get(b, 5));
			if (hi > json_number_value(json_array_get(r, 6)))
				json_array_set(r, 6, json_array_get(b, 6));
		}
		json_array_append_new(out, r);
	}
	return out;
}

/* One series' rows of revision > since as arrays [start, n, step, time,
 * value, min, max] (merged to at most budget rows), its stats and its last
 * point. */
static json_t *read_series(struct mstore *m, sqlite3_stmt *ss, int64_t since,
                           size_t budget, int64_t *cursor)
{
	int64_t id = sqlite3_column_int64(ss, 0);
	json_t *s = json_pack("{s:s,s:o,s:o,s:o}", "name",
	                      (const char *)sqlite3_column_text(ss, 2),
	                      "attempt", col_num(ss, 1), "count",
	                      col_num(ss, 3), "width", col_num(ss, 4));
	json_t *rows = json_array(), *last = json_null();
	sqlite3_stmt *st = q(m, Q_READ_STATS);

	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		json_object_set_new(s, "min", col_num(st, 0));
		json_object_set_new(s, "max", col_num(st, 1));
		if (sqlite3_column_int64(st, 2) > *cursor)
			*cursor = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	st = q(m, Q_READ_ROWS);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, since);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *r = json_array();
		for (int c = 0; c < 7; c++)
			json_array_append_new(r, col_num(st, c));
		json_array_append_new(rows, r);
	}
	sqlite3_reset(st);
	if (json_array_size(rows) > budget) {
		json_t *merged = rows_merge(
		    rows, (json_array_size(rows) + budget - 1) / budget);
		json_decref(rows);
		rows = merged;
	}
	if (json_array_size(rows) > 0) {
		json_t *r = json_array_get(rows, json_array_size(rows) - 1);
		last = json_pack("{s:O,s:O,s:O}", "step", json_array_get(r, 2),
		                 "time", json_array_get(r, 3), "value",
		                 json_array_get(r, 4));
	}
	json_object_set_new(s, "last", last);
	json_object_set_new(s, "points", rows);
	return s;
}

json_t *store_metrics_read(struct ws *ws, int64_t job, int64_t att,
                           const char *name, int64_t since)
{
	struct mstore *m = ws->mstore->reads;
	json_t *list = json_array(), *out;
	int64_t cursor = since, dropped = 0, nser = 1;
	sqlite3_stmt *ss, *st;
	size_t budget;

	pthread_mutex_lock(&m->mu);
	st = q(m, Q_READ_NSERIES);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	if (name != NULL)
		sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 1)
		nser = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	/* a reply holds at most MAX_REPLY_ROWS rows: a job with many series
	 * gets each merged further on the way out (never below 20 rows) */
	budget = (size_t)(MAX_REPLY_ROWS / nser);
	if (budget < 20)
		budget = 20;
	ss = q(m, Q_READ_SERIES);
	sqlite3_bind_int64(ss, 1, job);
	sqlite3_bind_int64(ss, 2, att);
	if (name != NULL)
		sqlite3_bind_text(ss, 3, name, -1, SQLITE_STATIC);
	while (sqlite3_step(ss) == SQLITE_ROW) {
		json_t *s = read_series(m, ss, since, budget, &cursor);
		/* a follower gets only the series with new rows */
		if (since > 0 &&
		    json_array_size(json_object_get(s, "points")) == 0)
			json_decref(s);
		else
			json_array_append_new(list, s);
	}
	sqlite3_reset(ss);
	st = q(m, Q_DROPPED);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	if (sqlite3_step(st) == SQLITE_ROW)
		dropped = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	pthread_mutex_unlock(&m->mu);
	out = json_pack("{s:I,s:I,s:I,s:o}", "job", (json_int_t)job, "cursor",
	                (json_int_t)cursor, "dropped", (json_int_t)dropped,
	                "series", list);
	return out;
}

int64_t store_metrics_seq(struct ws *ws, int64_t job, int64_t att, int64_t seq)
{
	struct mstore *m = ws->mstore;
	sqlite3_stmt *st;
	int64_t n = 0;

	if (m == NULL)
		return 0;
	m = m->seqs;
	pthread_mutex_lock(&m->mu);
	st = q(m, Q_MAX_SEQ);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, att);
	sqlite3_bind_int64(st, 3, seq);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	pthread_mutex_unlock(&m->mu);
	return n;
}

json_t *store_metrics_jobs(struct ws *ws)
{
	struct mstore *m = ws->mstore->reads;
	json_t *jobs = json_array();
	sqlite3_stmt *st;

	pthread_mutex_lock(&m->mu);
	st = q(m, Q_JOBS);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(
		    jobs, json_integer(sqlite3_column_int64(st, 0)));
	sqlite3_reset(st);
	pthread_mutex_unlock(&m->mu);
	return jobs;
}

int store_metrics_forget(struct ws *ws, json_t *jobs)
{
	struct mstore *m = ws->mstore;
	static const int del[] = {Q_FORGET_ROWS, Q_FORGET_SERIES,
	                          Q_FORGET_APPLIED};
	size_t i;
	json_t *j;
	int rc, n = 0;

	if (json_array_size(jobs) == 0)
		return 0;
	/* the sweeper calls this: it never waits for a busy store (it also
	 * expires leases); the next sweep tries again */
	if (pthread_mutex_trylock(&m->mu) != 0)
		return TERR_BUSY;
	sqlite3_busy_timeout(m->db, 0);
	rc = mexec(m, "BEGIN IMMEDIATE");
	sqlite3_busy_timeout(m->db, 5000);
	if (rc < 0)
		goto out;
	json_array_foreach(jobs, i, j)
	{
		for (int k = 0; k < 3; k++) {
			sqlite3_stmt *st = q(m, del[k]);
			sqlite3_bind_int64(st, 1, json_integer_value(j));
			if (!step_done(st))
				rc = TERR_IO;
			else if (k == 2)
				n += sqlite3_changes(m->db) > 0;
		}
	}
	if (rc == 0)
		rc = mexec(m, "COMMIT");
	if (rc < 0 && !sqlite3_get_autocommit(m->db))
		mexec(m, "ROLLBACK");
out:
	pthread_mutex_unlock(&m->mu);
	return rc < 0 ? rc : n;
}
