/* supervisor.h: internals shared by the supervisor's files
 * (supervisor.c: phases and result; supervisor-loop.c: the run phase's poll
 * loop; progress.c: progress lines; supervisor-resume.c,
 * supervisor-reattach.c, supervisor-pack.c). */
#ifndef TETHER_SUPERVISOR_H
#define TETHER_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runner/fence.h"
#include "runner/launcher.h"
#include "runner/metrics/metric-name.h"
#include "runner/runner.h"

struct err;

/* TETHER_PROGRESS lines of the job's output (progress.c). */
struct progress {
	char line[128]; /* the current line, when short enough */
	size_t len;
	bool skip;             /* the current line is too long */
	bool pending;          /* a value not yet reported in an event */
	int64_t last_event_ms; /* CLOCK_MONOTONIC of the last event */
};

#define PROGRESS_EVENT_MS 1000 /* at most one progress event a second */

/* Scan job output; true when a progress line brought a new value (kept in
 * r->progress). */
bool progress_feed(struct progress *p, struct runner *r, const char *data,
                   size_t n);
/* Append a `progress` event for a new value (rate-limited unless force). */
void progress_report(struct progress *p, struct runner *r, int64_t now_ms,
                     bool force);
/* Milliseconds until a pending value may be reported. */
int progress_wait_ms(const struct progress *p, int64_t now_ms);

/* Metric points of the job's output (metrics.c, docs/metrics.md). */
#define METRICS_LINE_MAX          4096 /* bytes of a line looked at */
#define METRICS_EVENT_MS          200  /* at most one event per 200 ms... */
#define METRICS_EVENT_POINTS      1000 /* ...or per 1000 points */
#define METRICS_EVENT_BYTES       (128 * 1024) /* ...or this much JSON */
#define METRICS_RATE              10000    /* points a second, then dropped */
#define METRICS_MAX_TOTAL         10000000 /* points an attempt's runner */
#define METRICS_REGEX_MATCH_LIMIT 100000
#define METRICS_REGEX_DEPTH_LIMIT 1000
#define METRICS_REGEX_HEAP_KIB    1024
#define METRICS_REGEX_MAX_HITS    100 /* lines over the limits: regex off */

struct metrics;
struct metrics *metrics_new(struct runner *r);
void metrics_free(struct metrics *m);
/* Scan job output (the bytes the log gets) for metric points. */
void metrics_feed(struct metrics *m, const char *data, size_t n);
/* The same for the launcher's stream (r->metrics_fd): TETHER_METRIC
 * lines only. */
void metrics_feed_aux(struct metrics *m, const char *data, size_t n);
/* Append a `metrics` event with the pending points when due (or now, when
 * force). */
void metrics_report(struct metrics *m, int64_t now_ms, bool force);
/* The job's output ended: the last event, and a note in the log when the
 * regex was turned off. */
void metrics_finish(struct metrics *m);
/* Milliseconds until pending points are due. */
int metrics_wait_ms(const struct metrics *m, int64_t now_ms);

/* The run phase: start through r->ops, pump the log, stop on a fence
 * reason (signal, grace, kill), collect.  *stop_reason is the fence
 * reason that ended the job, or NULL. */
int supervisor_run_job(struct runner *r, struct launch_exit *ex,
                       const char **stop_reason, struct err *e);

/* Restore checkpoint.tar.gz into the checkpoints dir and mark the attempt
 * resumed (supervisor-resume.c).  A bad archive is logged and skipped (the
 * job starts from scratch); only an I/O failure of the dir returns < 0. */
int supervisor_resume(struct runner *r, struct err *e);

/* A runner restarted mid-job (supervisor-reattach.c): when state.json
 * says an earlier runner of this attempt started the job, keep what it
 * recorded (launcher_ref, cgroup, job pid) and set r->reattach. */
void supervisor_reattach_check(struct runner *r, const char *dir);
/* Durations of the phases the earlier runner ran (from events) and
 * r->run_started_ms as of the job's start. */
void supervisor_reattach_times(struct runner *r, double durations[4]);

/* Load <dir>/spec.json and its runner settings into r (supervisor.c); job
 * and attempt may be missing when !need_job (`envs build`: job "prebuild"). */
int supervisor_load(struct runner *r, const char *dir, bool need_job,
                    struct err *e);

/* Pack the ended attempt DIR's checkpoints/ for upload (supervisor-pack.c,
 * `tether-runner pack-checkpoint DIR`). */
int supervisor_pack(const char *dir, struct err *e);

/* The whole attempt in DIR (`tether-runner run DIR`); returns the exit
 * status. */
int supervisor_run(const char *dir);

#endif
