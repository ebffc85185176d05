/* metrics.c: the registry of the agent's metrics and their text rendering
 * (the Prometheus exposition format 0.0.4).  The HTTP side is in
 * metrics-http.c. */
#include "agent/metrics.h"

#include "common/buf.h"
#include "common/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum metric_type { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };

#define MAX_SERIES 32 /* label values per family */
#define MAX_LABEL  48
#define NBUCKETS   14

struct metric_def {
	const char *name;
	enum metric_type type;
	const char *label; /* label name, or NULL */
	const char *help;
};

static const struct metric_def defs[M_METRIC_COUNT] = {
    [M_AGENT_INFO] = {"tether_agent_info", MT_GAUGE, "version",
                      "Always 1; the agent's version as a label."},
    [M_START_TIME] = {"tether_agent_start_time_seconds", MT_GAUGE, NULL,
                      "When the agent started (Unix time)."},
    [M_JOBS] = {"tether_jobs", MT_GAUGE, "state",
                "Jobs this agent holds, by state (queued, running, "
                "finishing)."},
    [M_QUEUE_LENGTH] = {"tether_queue_length", MT_GAUGE, NULL,
                        "Jobs in the local queue waiting for a slot."},
    [M_ATTEMPTS_STARTED] = {"tether_attempts_started_total", MT_COUNTER, NULL,
                            "Attempts whose runner was started."},
    [M_ATTEMPTS_FINISHED] = {"tether_attempts_finished_total", MT_COUNTER,
                             "reason", "Attempts finished, by final reason."},
    [M_LOG_BYTES_SHIPPED] = {"tether_log_bytes_shipped_total", MT_COUNTER, NULL,
                             "Log bytes acknowledged by the workspace."},
    [M_LOG_BYTES_PENDING] = {"tether_log_bytes_pending", MT_GAUGE, NULL,
                             "Log bytes on disk not yet acknowledged."},
    [M_EVENTS_PENDING] = {"tether_status_events_pending", MT_GAUGE, NULL,
                          "Status events not yet acknowledged (outbox)."},
    [M_ENV_CACHE_BYTES] = {"tether_env_cache_bytes", MT_GAUGE, NULL,
                           "Disk used by built environments."},
    [M_ENV_CACHE_HITS] = {"tether_env_cache_hits_total", MT_COUNTER, NULL,
                          "Attempts whose environment was already built."},
    [M_ENV_CACHE_MISSES] = {"tether_env_cache_misses_total", MT_COUNTER, NULL,
                            "Attempts that had to build their "
                            "environment."},
    [M_WORKSPACE_LATENCY] = {"tether_workspace_request_seconds", MT_HISTOGRAM,
                             "call",
                             "Round trip of workspace calls (the lease "
                             "long-poll excluded), by call."},
    [M_WORKSPACE_ERRORS] = {"tether_workspace_errors_total", MT_COUNTER, "call",
                            "Workspace calls that failed, by call."},
    [M_LAST_HEARTBEAT] = {"tether_last_heartbeat_timestamp_seconds", MT_GAUGE,
                          NULL,
                          "When the workspace last answered a lease "
                          "(Unix time)."},
};

static const double bounds[NBUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

struct series {
	char label[MAX_LABEL];
	double value; /* counter/gauge value; histogram sum */
	unsigned long long count, buckets[NBUCKETS];
};

struct family {
	int n;
	struct series s[MAX_SERIES];
};

static struct family fams[M_METRIC_COUNT];

/* The series of a label value, created on first use; NULL when full. */
static struct series *series_get(enum metric_id id, const char *label,
                                 bool create)
{
	struct family *f;

	if ((unsigned)id >= M_METRIC_COUNT)
		return NULL;
	f = &fams[id];
	if (defs[id].label == NULL || label == NULL)
		label = "";
	for (int i = 0; i < f->n; i++)
		if (strncmp(f->s[i].label, label, MAX_LABEL - 1) == 0)
			return &f->s[i];
	if (!create || f->n == MAX_SERIES)
		return NULL;
	memset(&f->s[f->n], 0, sizeof(f->s[f->n]));
	snprintf(f->s[f->n].label, MAX_LABEL, "%s", label);
	return &f->s[f->n++];
}

void metrics_add(enum metric_id id, const char *label, double by)
{
	struct series *s = series_get(id, label, true);

	if (s && isfinite(by))
		s->value += by;
}

void metrics_set(enum metric_id id, const char *label, double value)
{
	struct series *s = series_get(id, label, true);

	if (s && isfinite(value))
		s->value = value;
}

void metrics_observe(enum metric_id id, const char *label, double value)
{
	struct series *s = series_get(id, label, true);

	if (s == NULL || defs[id].type != MT_HISTOGRAM || !isfinite(value))
		return;
	s->value += value;
	s->count++;
	for (int i = 0; i < NBUCKETS; i++)
		if (value <= bounds[i])
			s->buckets[i]++;
}

double metrics_get(enum metric_id id, const char *label)
{
	struct series *s = series_get(id, label, false);

	if (s == NULL)
		return 0;
	return defs[id].type == MT_HISTOGRAM ? (double)s->count : s->value;
}

void metrics_clear(enum metric_id id)
{
	if ((unsigned)id < M_METRIC_COUNT)
		fams[id].n = 0;
}

/* A label value with \, " and newline escaped, as the format requires. */
static void escape_label(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 3 < len; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n') {
			out[o++] = '\\';
			out[o++] = *in == '\n' ? 'n' : *in;
		} else {
			out[o++] = *in;
		}
	}
	out[o] = 0;
}

/* `{label="v"` plus extra (`,le="0.5"`), closed; "" when neither. */
static void label_text(const struct metric_def *d, const struct series *s,
                       const char *extra, char *out, size_t len)
{
	char esc[2 * MAX_LABEL];

	escape_label(s->label, esc, sizeof(esc));
	if (d->label && extra)
		snprintf(out, len, "{%s=\"%s\",%s}", d->label, esc, extra);
	else if (d->label)
		snprintf(out, len, "{%s=\"%s\"}", d->label, esc);
	else if (extra)
		snprintf(out, len, "{%s}", extra);
	else
		out[0] = 0;
}

static int render_histogram(struct buf *out, const struct metric_def *d,
                            const struct series *s, struct err *e)
{
	char lab[256], le[32];
	int r = 0;

	for (int i = 0; i < NBUCKETS && r == 0; i++) {
		snprintf(le, sizeof(le), "le=\"%g\"", bounds[i]);
		label_text(d, s, le, lab, sizeof(lab));
		r = buf_printf(out, e, "%s_bucket%s %llu\n", d->name, lab,
		               s->buckets[i]);
	}
	if (r < 0)
		return r;
	label_text(d, s, "le=\"+Inf\"", lab, sizeof(lab));
	r = buf_printf(out, e, "%s_bucket%s %llu\n", d->name, lab, s->count);
	label_text(d, s, NULL, lab, sizeof(lab));
	if (r == 0)
		r = buf_printf(out, e, "%s_sum%s %.15g\n%s_count%s %llu\n",
		               d->name, lab, s->value, d->name, lab, s->count);
	return r;
}

static int render_family(struct buf *out, enum metric_id id, struct err *e)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	const struct metric_def *d = &defs[id];
	const struct family *f = &fams[id];
	char lab[256];
	int r;

	r = buf_printf(out, e, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help,
	               d->name, types[d->type]);
	/* a family without a label always shows a value (0 until set) */
	if (r == 0 && f->n == 0 && d->label == NULL)
		r = d->type == MT_HISTOGRAM
		        ? 0
		        : buf_printf(out, e, "%s 0\n", d->name);
	for (int i = 0; r == 0 && i < f->n; i++) {
		if (d->type == MT_HISTOGRAM) {
			r = render_histogram(out, d, &f->s[i], e);
			continue;
		}
		label_text(d, &f->s[i], NULL, lab, sizeof(lab));
		r = buf_printf(out, e, "%s%s %.15g\n", d->name, lab,
		               f->s[i].value);
	}
	return r;
}

static void (*collector)(void *);
static void *collector_arg;

void metrics_set_collector(void (*fn)(void *arg), void *arg)
{
	collector = fn;
	collector_arg = arg;
}

int metrics_render(struct buf *out, struct err *e)
{
	int r = 0;

	if (collector)
		collector(collector_arg);

	for (int id = 0; id < M_METRIC_COUNT && r == 0; id++)
		r = render_family(out, (enum metric_id)id, e);
	return r;
}
