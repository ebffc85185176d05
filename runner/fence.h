/* fence.h: why a job must stop, from the agent's files (cancel, lease) and
 * the clock (timeout, hang); the supervisor's run loop, the source fetch,
 * the environment builders and job-file reads all check it (fence.c). */
#ifndef TETHER_RUNNER_FENCE_H
#define TETHER_RUNNER_FENCE_H

#include <stdint.h>

/* Why a job must stop, from the agent's files and the clock. */
struct fence {
	int64_t lease_deadline_ms;   /* CLOCK_MONOTONIC; -1: no lease */
	int64_t timeout_deadline_ms; /* CLOCK_MONOTONIC; -1: no timeout */
	char cancel_reason[32];      /* "" when not cancelled */
	int64_t cancel_grace_ms;     /* -1: the default grace */
	int64_t hang_ms;             /* hang_timeout; 0: none */
	int64_t last_output_ms;      /* CLOCK_MONOTONIC of the last output */
};

#define FENCE_CHECK_MS 1000 /* the lease is checked at least this often */

void fence_init(struct fence *f);
/* Re-read the lease and cancel files (missing files: no lease, no
 * cancel; an unreadable lease keeps the last deadline). */
void fence_reload(struct fence *f, const char *dir);
/* The reason to stop now (a static string): the cancel file's reason, "lost"
 * past the lease deadline, "timed_out" past the timeout; NULL to keep running.
 */
const char *fence_check(const struct fence *f, int64_t now_ms);
/* Milliseconds to wait before the next check (0 .. FENCE_CHECK_MS). */
int fence_wait_ms(const struct fence *f, int64_t now_ms);

#endif
