/* metrics.h: the agent's Prometheus metrics.
 *
 * A registry of counters, gauges and histograms (one static table in
 * metrics.c, one row per metric family, each with at most one label), and
 * a tiny HTTP responder that serves them in the Prometheus text format on
 * a loopback address (config key metrics_listen, off by default).
 *
 * The responder never blocks: the agent's event loop watches the fds it is
 * told about through struct metrics_hooks and calls metrics_handle() when
 * one is readable.  Updating a metric is a few arithmetic operations and
 * works whether or not the listener is open.  docs/operations.md lists the
 * metrics and where the agent updates each. */
#ifndef TETHER_AGENT_METRICS_H
#define TETHER_AGENT_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct err;
struct buf;

enum metric_id {
	M_AGENT_INFO,        /* gauge {version} = 1 */
	M_START_TIME,        /* gauge: agent start, Unix seconds */
	M_JOBS,              /* gauge {state}: queued, running, finishing */
	M_QUEUE_LENGTH,      /* gauge: jobs waiting for a slot */
	M_ATTEMPTS_STARTED,  /* counter: runners started */
	M_ATTEMPTS_FINISHED, /* counter {reason} */
	M_LOG_BYTES_SHIPPED, /* counter: log bytes acknowledged */
	M_LOG_BYTES_PENDING, /* gauge: log bytes on disk not yet acked */
	M_EVENTS_PENDING,    /* gauge: status events not yet acked */
	M_ENV_CACHE_BYTES,   /* gauge: size of state_dir/envs */
	M_ENV_CACHE_HITS,    /* counter */
	M_ENV_CACHE_MISSES,  /* counter */
	M_WORKSPACE_LATENCY, /* histogram {call}: request round trip, s */
	M_WORKSPACE_ERRORS,  /* counter {call}: failed workspace calls */
	M_LAST_HEARTBEAT,    /* gauge: last acknowledged lease, Unix s */
	M_METRIC_COUNT
};

/* Add `by` to a counter or gauge (label NULL when the family has none). */
void metrics_add(enum metric_id id, const char *label, double by);
/* Set a gauge (or a counter, from a durable total). */
void metrics_set(enum metric_id id, const char *label, double value);
/* Record one observation in a histogram. */
void metrics_observe(enum metric_id id, const char *label, double value);
/* Current value (tests; histograms: the count). */
double metrics_get(enum metric_id id, const char *label);
/* Forget every value (tests, or a gauge family rebuilt from scratch). */
void metrics_clear(enum metric_id id);
/* Render every family in the Prometheus text format (version 0.0.4). */
int metrics_render(struct buf *out, struct err *e);

/* Called at the start of every metrics_render (gauges computed from the
 * agent's state on demand). */
void metrics_set_collector(void (*fn)(void *arg), void *arg);

/* The listener.  watch(ctx, fd, true) asks the loop to call
 * metrics_handle(fd) when fd is readable; watch(ctx, fd, false) stops it
 * (before the fd is closed). */
struct metrics_hooks {
	void *ctx;
	int (*watch)(void *ctx, int fd, bool on);
};

/* Listen on "HOST:PORT" (127.0.0.1:9464, [::1]:9464, localhost:9464).
 * Only loopback addresses are accepted.  NULL or "": metrics are off and
 * this returns 0. */
int metrics_open(const char *listen, const struct metrics_hooks *h,
                 struct err *e);
/* The listening socket, or -1 when off. */
int metrics_fd(void);
/* The port actually bound (":0" picks one), or 0 when off. */
int metrics_port(void);
/* An fd the loop was told to watch is readable. */
void metrics_handle(int fd);
/* Stop listening and drop open connections. */
void metrics_close(void);

/* metrics-agent.c: the agent's side (needs agent/agent.h). */
struct agent;
struct att;
/* Listen on conf.metrics_listen (off when unset) on the agent's loop and
 * compute the gauges from the agent's state at each scrape. */
int metrics_agent_open(struct agent *a, struct err *e);
/* Listen on a->conf.metrics_listen again (after metrics_close: reload). */
int metrics_agent_listen(struct agent *a, struct err *e);
/* A status event read from the runner (before t->final_seen is set):
 * counts final reasons and env cache hits/misses. */
void metrics_agent_event(const struct att *t, json_t *ev);
/* Around one workspace call: after it is started with its tp_call
 * pointer, and in its reply callback (ok: a reply came).  what: "log",
 * "events", "outputs", "register", "snapshot", "handback". */
void metrics_call_start(const void *call);
void metrics_call_end(const void *call, const char *what, bool ok);

#endif
