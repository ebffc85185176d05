/* housekeeping.c: remove finished attempt directories after
 * attempt_retention (never one that is still queued, running or
 * finishing: only rows in state done qualify). */
#include "agent/agent.h"
#include "agent/db.h"

#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <unistd.h>

static void housekeeping_remove(struct agent *a, const char *job,
                                int64_t attempt)
{
	char *dir = xasprintf("%s/jobs/%s/%lld", a->conf.state_dir, job,
	                      (long long)attempt);
	char *parent = xasprintf("%s/jobs/%s", a->conf.state_dir, job);
	struct err e = {0};
	sqlite3_stmt *st;

	if (rm_rf(dir, &e) < 0) {
		log_warn("%s", e.msg);
		goto out;
	}
	rmdir(parent); /* only when no other attempt is left */
	if (db_prepare(a->db,
	               "UPDATE attempts SET dir_removed = 1 WHERE job = ? AND "
	               "attempt = ?",
	               &st, &e) == 0) {
		sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, attempt);
		db_step_done(a->db, st, &e);
	}
	log_info("job=%s attempt=%lld directory removed (retention)", job,
	         (long long)attempt);
out:
	free(dir);
	free(parent);
}

void housekeeping_run(void *arg)
{
	struct agent *a = arg;
	double cutoff =
	    (double)(now_wall_ms() - a->conf.attempt_retention_ms) / 1000.0;
	sqlite3_stmt *st;
	struct err e = {0};

	if (db_prepare(a->db,
	               "SELECT job, attempt FROM attempts WHERE state = 'done' "
	               "AND dir_removed = 0 AND ended_at < ?",
	               &st, &e) == 0) {
		sqlite3_bind_double(st, 1, cutoff);
		while (sqlite3_step(st) == SQLITE_ROW)
			housekeeping_remove(
			    a, (const char *)sqlite3_column_text(st, 0),
			    sqlite3_column_int64(st, 1));
		sqlite3_finalize(st);
	}
	loop_timer_set(a->hk_timer, a->conf.housekeeping_ms);
}
