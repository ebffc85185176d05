/* attempt-clock.c: when the attempt started, and so its timeout deadline:
 * the job's `timeout` counts from the attempt's first event, through the
 * source fetch, the environment build and the run (docs/jobspec.md), so a
 * build that hangs is stopped like a job that hangs.  The first event's
 * time comes from runner_open_files(), which reads the events file anyway;
 * this file does no I/O, so the fence's users (source, env builders, run
 * loop) need none of the runner's. */
#include "common/util.h"
#include "runner/runner.h"

int64_t runner_timeout_deadline(const struct runner *r)
{
	if (r->spec == NULL || r->spec->timeout_ms <= 0)
		return -1;
	return r->attempt_started_ms + r->spec->timeout_ms;
}

void runner_attempt_start(struct runner *r, double first_event)
{
	int64_t now = now_mono_ms(), wall = now_wall_ms();
	int64_t first = (int64_t)(first_event * 1000.0);

	r->attempt_started_ms = now;
	if (first > 0 && first <= wall) /* else new, or the clock went back */
		r->attempt_started_ms = now - (wall - first);
}
