/* metrics-agent.c: the agent's side of its metrics: the listener on the
 * agent's event loop, the gauges computed from the agent's state at each
 * scrape (so they cannot drift from it), and the counters fed by the
 * status events the runner writes.  docs/operations.md says where each
 * metric comes from. */
#include "agent/agent.h"
#include "agent/metrics.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <ftw.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#define ENV_SIZE_EVERY_MS 60000
#define MAX_CALLS         64

static void on_metrics_fd(void *arg, int fd, uint32_t events)
{
	metrics_handle(fd);
}

static int metrics_watch(void *ctx, int fd, bool on)
{
	struct agent *a = ctx;

	if (!on) {
		loop_unwatch(a->loop, fd);
		return 0;
	}
	return loop_watch(a->loop, fd, EPOLLIN, on_metrics_fd, a, NULL);
}

static int64_t env_bytes;

static int add_size(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	if (flag == FTW_F)
		env_bytes += (int64_t)st->st_blocks * 512;
	return 0;
}

/* Disk used by state_dir/envs, walked at most once a minute. */
static void collect_env_size(struct agent *a)
{
	static int64_t last_ms = -ENV_SIZE_EVERY_MS;
	char *dir;

	if (now_mono_ms() - last_ms < ENV_SIZE_EVERY_MS)
		return;
	last_ms = now_mono_ms();
	dir = xasprintf("%s/envs", a->conf.state_dir);
	env_bytes = 0;
	nftw(dir, add_size, 16, FTW_PHYS);
	metrics_set(M_ENV_CACHE_BYTES, NULL, (double)env_bytes);
	free(dir);
}

static int64_t log_size(const struct att *t)
{
	char *path = xasprintf("%s/log", t->dir);
	struct stat st;
	int64_t n = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;

	free(path);
	return n;
}

static void collect_events_pending(struct agent *a)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(a->db, "SELECT COUNT(*) FROM outbox", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		metrics_set(M_EVENTS_PENDING, NULL,
		            (double)sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
}

/* Called by metrics_render before each scrape. */
static void collect(void *arg)
{
	struct agent *a = arg;
	double n[ATT_DONE + 1] = {0};
	double pending = 0;

	for (struct att *t = a->atts; t != NULL; t = t->next) {
		n[t->state]++;
		if (!t->local && t->dir && t->state != ATT_QUEUED) {
			int64_t left = log_size(t) - t->log_acked;

			pending += left > 0 ? (double)left : 0;
		}
	}
	metrics_set(M_JOBS, "queued", n[ATT_QUEUED]);
	metrics_set(M_JOBS, "running", n[ATT_RUNNING]);
	metrics_set(M_JOBS, "finishing", n[ATT_FINISHING]);
	metrics_set(M_QUEUE_LENGTH, NULL, n[ATT_QUEUED]);
	metrics_set(M_LOG_BYTES_PENDING, NULL, pending);
	collect_events_pending(a);
	collect_env_size(a);
}

int metrics_agent_listen(struct agent *a, struct err *e)
{
	struct metrics_hooks h = {.ctx = a, .watch = metrics_watch};
	int r;

	if ((r = metrics_open(a->conf.metrics_listen, &h, e)) < 0)
		return err_wrap(e, "metrics");
	return 0;
}

int metrics_agent_open(struct agent *a, struct err *e)
{
	metrics_set(M_AGENT_INFO, TETHER_VERSION, 1);
	metrics_set(M_START_TIME, NULL, (double)now_wall_ms() / 1000.0);
	metrics_set_collector(collect, a);
	return metrics_agent_listen(a, e);
}

void metrics_agent_event(const struct att *t, json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *phase = json_string_value(json_object_get(ev, "phase"));
	const char *state = json_string_value(json_object_get(ev, "state"));
	json_t *cached = json_object_get(ev, "cached");

	if (type == NULL)
		return;
	if (strcmp(type, "final") == 0 && !t->final_seen) {
		const char *reason =
		    json_string_value(json_object_get(ev, "reason"));

		metrics_add(M_ATTEMPTS_FINISHED, reason ? reason : "unknown",
		            1);
	} else if (strcmp(type, "phase") == 0 && phase && state &&
	           strcmp(phase, "env") == 0 && strcmp(state, "end") == 0 &&
	           json_is_boolean(cached)) {
		metrics_add(json_is_true(cached) ? M_ENV_CACHE_HITS
		                                 : M_ENV_CACHE_MISSES,
		            NULL, 1);
	}
}

/* Workspace calls in flight: the call pointer and when it was sent. */
static struct {
	const void *call;
	int64_t sent_ms;
} calls[MAX_CALLS];

void metrics_call_start(const void *call)
{
	int slot = 0;

	if (call == NULL)
		return;
	for (int i = 0; i < MAX_CALLS; i++) {
		if (calls[i].call == NULL || calls[i].call == call) {
			slot = i;
			break;
		}
		if (calls[i].sent_ms < calls[slot].sent_ms)
			slot = i; /* full: reuse the oldest */
	}
	calls[slot].call = call;
	calls[slot].sent_ms = now_mono_ms();
}

void metrics_call_end(const void *call, const char *what, bool ok)
{
	if (call == NULL)
		return;
	for (int i = 0; i < MAX_CALLS; i++) {
		if (calls[i].call != call)
			continue;
		calls[i].call = NULL;
		if (ok)
			metrics_observe(
			    M_WORKSPACE_LATENCY, what,
			    (double)(now_mono_ms() - calls[i].sent_ms) /
			        1000.0);
		else
			metrics_add(M_WORKSPACE_ERRORS, what, 1);
		return;
	}
}
