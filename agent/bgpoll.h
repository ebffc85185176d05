/* bgpoll.h: a value read in the background at heartbeat pace.
 * Some capacity facts take seconds to read (scontrol, a Spark master's
 * status page). A worker thread calls fetch() every period and keeps the
 * latest answer; the event loop copies it under a mutex when it builds a
 * registration or lease body and never waits for the slow source. */
#ifndef TETHER_AGENT_BGPOLL_H
#define TETHER_AGENT_BGPOLL_H

#include "common/err.h"

#include <jansson.h>
#include <stdint.h>

struct bgpoll;

struct bgpoll_ops {
	const char *what;      /* log prefix: "slurm capacity" */
	const char *recovered; /* logged when it answers again */
	/* Read one answer into *out (0) or fail naming the source (< 0).
	 * Runs on the worker thread, without the lock. */
	int (*fetch)(void *ctx, json_t **out, struct err *e);
	void (*free_ctx)(void *ctx);
};

/* Start the thread (ctx is owned from then on, freed by free_ctx). */
struct bgpoll *bgpoll_start(const struct bgpoll_ops *ops, void *ctx,
                            int64_t period_ms, struct err *e);
/* Stop it: the thread may be inside fetch(); it frees the state when it
 * is back, the caller does not wait. NULL is a no-op. */
void bgpoll_stop(struct bgpoll *p);
/* A copy of the latest answer; NULL before the first, after an error or
 * for p NULL. */
json_t *bgpoll_latest(struct bgpoll *p);

#endif
