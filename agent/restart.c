/* restart.c: a runner that died under a running attempt without
 * result.json and without a final event is started again: `tether-runner
 * run DIR` on an attempt whose job already runs re-attaches to it (docker:
 * the same container; slurm: the same Slurm job) and continues the log and
 * the event seq; a sandbox job died with its runner, and the new runner
 * ends the attempt `lost` itself (docs/state-dir.md).  Each attempt gets
 * RESTART_MAX restarts, counted in agent.db before the fork, so an agent
 * in a crash loop does not start runners for ever.  A workspace attempt
 * whose lease is about to lapse waits for its renewal first. */
#include "agent/agent.h"
#include "agent/db.h"

#include "common/attempt.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <jansson.h>
#include <unistd.h>

/* A lease with less left than this is renewed before a restart. */
#define RESTART_LEASE_LEFT_MS 1000

static int restart_count(struct att *t, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(t->a->db,
	                    "UPDATE attempts SET runner_restarts = ? WHERE "
	                    "job = ? AND attempt = ?",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_int(st, 1, t->runner_restarts + 1);
	sqlite3_bind_text(st, 2, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, t->attempt);
	if ((r = db_step_done(t->a->db, st, e)) < 0)
		return r;
	t->runner_restarts++;
	return 0;
}

/* Forget the dead runner: the new one is found through state.json once it
 * rewrote it with its own pid and start time. */
static void restart_reset(struct att *t)
{
	struct attempt_state st;
	struct err e = {0};

	t->stale_pid = 0;
	t->stale_start = 0;
	if (attempt_state_read(t->dir, &st, &e) == 0) {
		t->stale_pid = st.runner_pid;
		t->stale_start = st.runner_start;
	}
	if (t->pidfd >= 0) {
		loop_unwatch(t->a->loop, t->pidfd);
		close(t->pidfd);
		t->pidfd = -1;
	}
	t->runner_pid = 0;
	t->runner_gone = false;
	t->launched_mono = now_mono_ms();
}

/* After an agent restart the lease may be about to lapse (nobody renewed
 * it while the agent was down): a runner started now would end the job at
 * once.  Wait for the renewal (the first lease poll is answered at once),
 * for runner_start_timeout after recovery at most. */
static bool restart_wait_lease(struct att *t)
{
	struct agent *a = t->a;
	int64_t now = now_mono_ms();

	if (t->local || t->lease_mono_ms > now + RESTART_LEASE_LEFT_MS ||
	    now - t->launched_mono >= a->conf.runner_start_ms)
		return false;
	if (!loop_timer_armed(a->sched_timer))
		loop_timer_set(a->sched_timer, 250);
	return true;
}

/* spec.json is written without a sync (common/attempt.h): a power loss may
 * have taken it.  The runner is gone (that is why it restarts), so no lock
 * of its is on the file: write it again from agent.db. */
static int restart_spec(struct att *t, struct err *e)
{
	json_t *doc = NULL;
	struct err re = {0};

	if (attempt_spec_read(t->dir, &doc, &re) == 0) {
		json_decref(doc);
		return 0;
	}
	log_warn("job=%s attempt=%lld %s: writing it again from agent.db",
	         t->job, (long long)t->attempt, re.msg);
	return launch_write_spec(t->a, t, t->dir, e);
}

int restart_runner(struct att *t, struct err *e)
{
	int r;

	if (t->runner_restarts >= RESTART_MAX)
		return 0;
	if (restart_wait_lease(t))
		return 1;
	if ((r = restart_count(t, e)) < 0)
		return r;
	restart_reset(t);
	log_warn("job=%s attempt=%lld runner ended without a result: starting "
	         "it again (restart %d of %d)",
	         t->job, (long long)t->attempt, t->runner_restarts,
	         RESTART_MAX);
	if ((r = restart_spec(t, e)) < 0 || (r = launch_fork(t->a, t, e)) < 0)
		return r;
	return 1;
}
