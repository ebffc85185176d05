/* recovery.c: rebuild the in-memory attempts from agent.db on start (and
 * pick up locally submitted jobs later).  A running attempt's runner is
 * found again through state.json (pid and start time, so a reused pid is
 * never trusted); one that finished while the agent was down is collected;
 * one whose runner vanished without a result gets a new runner, which
 * re-attaches to the job (restart.c; lost after RESTART_MAX).  Log
 * shipping resumes from the stored acknowledged offset. */
#include "agent/agent.h"
#include "agent/db.h"

#include "common/attempt.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static void recovery_row(struct agent *a, sqlite3_stmt *st)
{
	const char *job = (const char *)sqlite3_column_text(st, 0);
	int64_t attempt = sqlite3_column_int64(st, 1);
	const char *gpu_ids = (const char *)sqlite3_column_text(st, 10);
	const char *snap = (const char *)sqlite3_column_text(st, 11);
	struct att *t;
	struct err e = {0};
	int s = att_state_parse((const char *)sqlite3_column_text(st, 3));

	if (s < 0 || att_find(a, job, attempt) != NULL)
		return;
	t = att_new(a, job, attempt);
	t->local =
	    strcmp((const char *)sqlite3_column_text(st, 2), "local") == 0;
	t->state = (enum att_state)s;
	t->priority = sqlite3_column_int64(st, 4);
	t->fifo = sqlite3_column_int64(st, 5);
	t->cpus = sqlite3_column_double(st, 6);
	t->memory = sqlite3_column_int64(st, 7);
	t->gpus = sqlite3_column_int64(st, 8);
	t->log_acked = sqlite3_column_int64(st, 9);
	t->gpu_ids = gpu_ids ? xstrdup(gpu_ids) : NULL;
	t->snapshot = snap ? xstrdup(snap) : NULL;
	t->events_off = sqlite3_column_int64(st, 12);
	t->last_seq = sqlite3_column_int64(st, 13);
	t->final_acked = sqlite3_column_int(st, 14);
	t->not_current = sqlite3_column_int(st, 15);
	t->outputs_done = sqlite3_column_int(st, 16);
	t->lease_ttl_ms = sqlite3_column_int64(st, 17);
	t->lease_mono_ms = sqlite3_column_int64(st, 18);
	t->runner_restarts = sqlite3_column_int(st, 19);
	t->rank = sqlite3_column_int(st, 20) != 0;
	t->dir = xasprintf("%s/jobs/%s/%lld", a->conf.state_dir, job,
	                   (long long)attempt);
	if (t->state == ATT_QUEUED)
		return;
	if (!t->local)
		attempt_lease_read(t->dir, &t->lease_mono_ms, NULL);
	t->launched_mono = now_mono_ms();
	/* An outbox row for a final event means the final was seen. */
	if (t->last_seq > 0 && t->state == ATT_FINISHING)
		t->final_seen = true;
	if (att_watch(t, &e) < 0)
		log_warn("job=%s: %s", job, e.msg);
	log_info("job=%s attempt=%lld recovered (%s, log acked %lld)", job,
	         (long long)attempt, att_state_name(t->state),
	         (long long)t->log_acked);
}

int recovery_load(struct agent *a, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(a->db,
	                    "SELECT job, attempt, origin, state, priority, "
	                    "fifo, cpus, memory, gpus, log_acked, gpu_ids, "
	                    "snapshot, events_off, last_seq, final_acked, "
	                    "not_current, outputs_done, lease_ttl_ms, "
	                    "lease_mono_ms, runner_restarts, "
	                    "CASE WHEN json_valid(spec) THEN "
	                    "json_type(spec, '$.nodes') = 'integer' AND "
	                    "json_extract(spec, '$.nodes') > 1 ELSE 0 END "
	                    "FROM attempts "
	                    "WHERE state != 'done' "
	                    "ORDER BY fifo",
	                    &st, e)) < 0)
		return r;
	while (sqlite3_step(st) == SQLITE_ROW)
		recovery_row(a, st);
	sqlite3_finalize(st);
	agent_kick(a);
	return 0;
}
