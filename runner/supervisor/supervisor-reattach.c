/* supervisor-reattach.c: a runner started on an attempt whose job an
 * earlier runner of the same attempt already started (that runner was
 * killed: kill -9, OOM, a crash).  state.json tells: a launcher_ref (the
 * container, the Slurm job) or a phase of run/outputs.  The new runner then
 * keeps what state.json recorded, skips the source and env phases (the work
 * directory is the running job's), calls ops->reattach() before it writes
 * anything into the log, and follows the job to its end as usual.  The
 * durations of the phases the earlier runner ran come from the events file.
 * See docs/state-dir.md ("A runner restarted mid-job"). */
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/env/env.h"
#include "runner/supervisor/supervisor.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

void supervisor_reattach_check(struct runner *r, const char *dir)
{
	struct attempt_state old;
	struct err e = {0};

	if (attempt_state_read(dir, &old, &e) < 0)
		return; /* no state.json: no earlier runner */
	if (old.launcher_ref[0] == '\0' && strcmp(old.phase, "run") != 0 &&
	    strcmp(old.phase, "outputs") != 0)
		return; /* it died before the run phase: start afresh */
	r->reattach = true;
	r->state.job_pid = old.job_pid;
	r->state.job_start = old.job_start;
	r->state.log_start = old.log_start;
	memcpy(r->state.launcher, old.launcher, sizeof(old.launcher));
	memcpy(r->state.launcher_ref, old.launcher_ref,
	       sizeof(old.launcher_ref));
	memcpy(r->state.cgroup, old.cgroup, sizeof(old.cgroup));
	snprintf(r->state.phase, sizeof(r->state.phase), "run");
	log_info("%s: an earlier runner (pid %d) started this attempt's job "
	         "(%s %s): re-attaching",
	         dir, (int)old.runner_pid, old.launcher[0] ? old.launcher : "?",
	         old.launcher_ref[0] ? old.launcher_ref : "-");
}

static double wall_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* One event line: phase durations, the env key, the job's start time. */
static void scan_event(struct runner *r, json_t *ev, double durations[4],
                       double *started)
{
	static const char *const phases[] = {"source", "env", "run", "outputs"};
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *phase = json_string_value(json_object_get(ev, "phase"));
	const char *state = json_string_value(json_object_get(ev, "state"));
	const char *key = json_string_value(json_object_get(ev, "env_key"));
	json_t *d = json_object_get(ev, "duration");

	if (type != NULL && strcmp(type, "started") == 0 &&
	    json_is_number(json_object_get(ev, "time")))
		*started = json_number_value(json_object_get(ev, "time"));
	if (type == NULL || strcmp(type, "phase") != 0 || phase == NULL ||
	    state == NULL || strcmp(state, "end") != 0 || !json_is_number(d))
		return;
	for (int i = 0; i < 2; i++) /* run and outputs are this runner's */
		if (strcmp(phase, phases[i]) == 0)
			durations[i] = json_number_value(d);
	if (strcmp(phase, "env") == 0 && key != NULL && strlen(key) == 64)
		memcpy(r->env.key, key, 65);
}

struct scan {
	struct runner *r;
	double *durations, started;
};

static int scan_line(void *arg, json_t *ev, const char *line, struct err *e)
{
	struct scan *s = arg;

	(void)line;
	(void)e;
	if (ev != NULL)
		scan_event(s->r, ev, s->durations, &s->started);
	return 0;
}

void supervisor_reattach_times(struct runner *r, double durations[4])
{
	struct scan s = {r, durations, -1};
	double started;
	struct err e = {0};

	r->run_started_ms = now_mono_ms();
	attempt_events_read(r->dir, scan_line, &s, NULL);
	started = s.started;
	/* The run phase (and the timeout) count from the job's start. */
	if (started > 0 && wall_now() > started)
		r->run_started_ms -= (int64_t)((wall_now() - started) * 1000);
	/* The job still uses its environment: keep eviction away from it. */
	if (env_hold(r, &e) < 0)
		log_warn("job=%s env %.12s: %s", r->job_id, r->env.key, e.msg);
}
