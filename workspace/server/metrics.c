/* metrics.c: the jobs' metric points at the workspace (docs/protocol.md,
 * "Metrics").  An agent sends them as events of type "metrics" in an
 * attempt's events batch; they are checked here, stored in the metrics
 * store (store-metrics.c, its own file and lock) before the batch's other
 * events are; the events table keeps no row for them (a job printing many
 * points would fill it): their seqs are acknowledged from the metrics
 * store's `applied` table.
 * GET jobs/{id}/metrics reads them, with `since` for a follower and
 * `wait` to long-poll like the log read. */
#include "workspace/server/http.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_POINTS 1000  /* per event */
#define METRICS_CAP        10000 /* rows per series before buckets merge */
#define METRICS_MAX_SERIES 1000  /* per attempt; more are dropped */

static const char name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz"
                                 "0123456789_.:/-";

static int check_point(json_t *p, const char *w, struct err *e)
{
	const char *name;
	int64_t n;
	double d;
	int r;

	if (!json_is_object(p))
		return err_set(e, TERR_INVAL, "%s: expected an object", w);
	if ((r = json_check_keys(
	         p, w,
	         (const char *const[]){"name", "value", "step", "time", NULL},
	         e)) < 0 ||
	    (r = json_get_str(p, w, "name", true, WS_MAX_NAME, &name, e)) < 0 ||
	    (r = json_get_num(p, w, "value", true, -DBL_MAX, DBL_MAX, &d, e)) <
	        0 ||
	    (r = json_get_int(p, w, "step", false, 0, INT64_MAX, &n, e)) < 0 ||
	    (r = json_get_num(p, w, "time", false, 0, 1e11, &d, e)) < 0)
		return r;
	if (*name == '\0' || strspn(name, name_chars) != strlen(name))
		return err_set(e, TERR_INVAL,
		               "%s.name: 1-%d bytes of A-Z a-z 0-9 _ . : / -",
		               w, WS_MAX_NAME);
	return 0;
}

int metrics_check_event(json_t *ev, const char *w, struct err *e)
{
	json_t *pts = json_object_get(ev, "points");
	char pw[64];
	int64_t n;
	size_t i;
	int r;

	if ((r = json_get_int(ev, w, "dropped", false, 0, INT64_MAX, &n, e)) <
	    0)
		return r;
	if (!json_is_array(pts))
		return err_set(e, TERR_INVAL, "%s.points: expected an array",
		               w);
	if (json_array_size(pts) > METRICS_MAX_POINTS)
		return err_set(e, TERR_INVAL, "%s.points: more than %d", w,
		               METRICS_MAX_POINTS);
	for (i = 0; i < json_array_size(pts); i++) {
		snprintf(pw, sizeof(pw), "%s.points[%zu]", w, i);
		if ((r = check_point(json_array_get(pts, i), pw, e)) < 0)
			return r;
	}
	return 0;
}

bool metrics_is_event(json_t *ev)
{
	return strcmp(json_string_value(json_object_get(ev, "type")),
	              "metrics") == 0;
}

int metrics_open(struct ws *ws, struct err *e)
{
	char *path = config_path(ws, "metrics.db");
	int r = store_metrics_open(ws, path, e);

	free(path);
	return r;
}

int metrics_apply(struct ws *ws, int64_t job, int64_t att, json_t *evs)
{
	size_t i;
	json_t *ev;

	json_array_foreach(evs, i, ev)
	{
		if (metrics_is_event(ev))
			return store_metrics_apply(
			    ws, job, att, evs, METRICS_CAP, METRICS_MAX_SERIES);
	}
	return 0;
}

/* Add to gone the jobs of `jobs` that ended before `before` (or are
 * unknown); db locked. */
static void ended_of(struct ws *ws, json_t *jobs, double before, json_t *gone)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT ended_at FROM jobs WHERE id = ?");
	size_t i;
	json_t *j;

	json_array_foreach(jobs, i, j)
	{
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, json_integer_value(j));
		if (sqlite3_step(st) != SQLITE_ROW ||
		    (sqlite3_column_type(st, 0) != SQLITE_NULL &&
		     sqlite3_column_double(st, 0) < before))
			json_array_append(gone, j);
	}
	store_done(st);
}

/* Metrics go with the logs (log_retention).  The first sweep looks at
 * every job with metrics; later ones only at the jobs whose end crossed the
 * line since the last sweep. */
void metrics_retention(struct ws *ws, double before)
{
	json_t *gone = json_array(), *all = NULL;
	sqlite3_stmt *st;
	int n;

	if (ws->mstore == NULL)
		goto out;
	if (ws->metrics_swept <= 0)
		all = store_metrics_jobs(ws);
	store_lock(ws);
	if (all != NULL) {
		ended_of(ws, all, before, gone);
	} else {
		st = store_prep(ws, "SELECT id FROM jobs WHERE ended_at >= ? "
		                    "AND ended_at < ?");
		sqlite3_bind_double(st, 1, ws->metrics_swept);
		sqlite3_bind_double(st, 2, before);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(gone, store_col_int(st, 0));
		store_done(st);
	}
	store_unlock(ws);
	if ((n = store_metrics_forget(ws, gone)) >= 0)
		ws->metrics_swept = before;
	if (n > 0)
		log_info("retention: metrics of %d jobs deleted", n);
out:
	json_decref(all);
	json_decref(gone);
}

/* The job's state: 0 live, 1 ended, -1 no such job; db locked. */
static int job_state(struct ws *ws, int64_t job)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT state FROM jobs WHERE id = ?");
	int s = -1;

	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW)
		s = sched_reason_terminal(
		        (const char *)sqlite3_column_text(st, 0))
		        ? 1
		        : 0;
	store_done(st);
	return s;
}

static bool has_rows(json_t *body)
{
	size_t i;
	json_t *s;

	json_array_foreach(json_object_get(body, "series"), i, s)
	{
		if (json_array_size(json_object_get(s, "points")) > 0)
			return true;
	}
	return false;
}

/* GET jobs/{id}/metrics[?name=&since=&attempt=&wait=] */
static int metrics_read(struct req *r)
{
	struct ws *ws = r->ws;
	const char *name;
	int64_t job, att, since, wait;
	json_t *body;
	int state;

	if (req_seg_id(r, 1, &job) < 0 ||
	    req_arg_i64(r, "attempt", 1, INT64_MAX, 0, &att) < 0 ||
	    req_arg_i64(r, "since", 0, INT64_MAX, 0, &since) < 0 ||
	    req_arg_i64(r, "wait", 0, 60, 0, &wait) < 0 ||
	    req_arg_name(r, "name", &name) < 0)
		return r->status;
	wait_first(r, wait * 1000);
	r->wait_kind = WAIT_LOG;
	r->wait_job = job;
	for (;;) {
		wait_mark(r);
		store_lock(ws);
		state = job_state(ws, job);
		store_unlock(ws);
		if (state < 0)
			return reply_error(r, 404, "not_found", NULL,
			                   "no job %lld", (long long)job);
		body = store_metrics_read(ws, job, att, name, since);
		if (has_rows(body) || state == 1 ||
		    now_mono_ms() >= r->deadline_ms || ws->stopping)
			return reply_json(r, 200, body);
		json_decref(body);
		if (wait_park(r))
			return REQ_SUSPENDED;
	}
}

const struct route routes_metrics[] = {
    {"GET", "jobs/*/metrics", AUTH_ADMIN, BODY_NONE, 0, metrics_read},
    {NULL, NULL, 0, 0, 0, NULL},
};
