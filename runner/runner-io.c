/* runner-io.c: what the runner writes into the attempt directory
 * besides result.json: the log (through the masker), the events file and
 * state.json.  Formats: docs/state-dir.md and docs/protocol.md. */
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/logpipe.h"
#include "runner/mask.h"
#include "runner/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define LOGF_MAX 4096

void runner_logf(struct runner *r, const char *prefix, const char *fmt, ...)
{
	char line[LOGF_MAX];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "[%s] ", prefix);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	runner_log_bytes(r, line, (size_t)n);
}

void runner_log_bytes(struct runner *r, const char *data, size_t len)
{
	struct err e = {0};

	if (r->aux_log == NULL) {
		log_warn("job=%s no log open; dropped %zu bytes", r->job_id,
		         len);
		return;
	}
	if (logpipe_write(r->aux_log, data, len, &e) < 0)
		log_error("job=%s log: %s", r->job_id, e.msg);
	/* A line must not wait for more bytes: flush the held-back tail. */
	if (len > 0 && data[len - 1] == '\n')
		logpipe_finish(r->aux_log, &e);
}

/* A sandboxed job dies with its machine (its processes, pid namespace and
 * cgroup are that kernel's): after a power loss no runner can re-attach to
 * it, so its record has nothing to outlive and is written atomically only. */
static bool job_outlives_machine(const struct runner *r)
{
	return r->launcher != LAUNCHER_SANDBOX;
}

bool runner_state_durable(const struct runner *r)
{
	const struct attempt_state *st = &r->state;

	return (st->job_pid > 0 || st->launcher_ref[0] != '\0') &&
	       strcmp(st->phase, "done") != 0 && job_outlives_machine(r);
}

int runner_save_state(struct runner *r, struct err *e)
{
	return attempt_state_write(r->dir, &r->state, job_outlives_machine(r),
	                           e);
}

static double wall_seconds(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int runner_event(struct runner *r, json_t *event, struct err *e)
{
	int rc;

	json_object_set_new(event, "seq", json_integer(r->next_seq));
	if (json_object_get(event, "time") == NULL)
		json_object_set_new(event, "time", json_real(wall_seconds()));
	if ((rc = attempt_event_append(r->events_fd, event, e)) < 0)
		return err_wrap(e, "append event");
	r->next_seq++;
	return 0;
}

int runner_phase_event(struct runner *r, const char *phase, const char *state,
                       double duration, struct err *e)
{
	json_t *ev = json_pack("{s:s, s:s, s:s}", "type", "phase", "phase",
	                       phase, "state", state);
	int rc;

	if (duration >= 0)
		json_object_set_new(ev, "duration", json_real(duration));
	if (strcmp(phase, "source") == 0 && strcmp(state, "end") == 0 &&
	    r->commit != NULL)
		json_object_set_new(ev, "commit", json_string(r->commit));
	if (strcmp(phase, "env") == 0 && strcmp(state, "end") == 0 &&
	    r->env.key[0] != '\0') {
		json_object_set_new(ev, "env_key", json_string(r->env.key));
		json_object_set_new(ev, "cache_hit",
		                    json_boolean(r->env.cache_hit));
	}
	rc = runner_event(r, ev, e);
	json_decref(ev);
	return rc;
}

void runner_set_phase(struct runner *r, const char *phase)
{
	struct err e = {0};

	snprintf(r->state.phase, sizeof(r->state.phase), "%s", phase);
	if (attempt_state_write(r->dir, &r->state, runner_state_durable(r),
	                        &e) < 0)
		log_error("job=%s state.json: %s", r->job_id, e.msg);
}

/* The "time" of the first event, from the file's first bytes; 0 when
 * there is none. */
static double first_event_time(char *buf, ssize_t n)
{
	char *nl = memchr(buf, '\n', (size_t)n);
	json_t *ev;
	double t = 0;

	if (nl == NULL)
		return 0;
	ev = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
	if (json_is_number(json_object_get(ev, "time")))
		t = json_number_value(json_object_get(ev, "time"));
	json_decref(ev);
	return t;
}

/* The next seq: one past the number of complete lines in events (a
 * restarted runner continues the sequence); *first: the first event's
 * time (the attempt's start), 0 for a new file. */
static int64_t count_events(const char *path, double *first)
{
	char buf[65536];
	int64_t lines = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*first = 0;
	if (fd < 0)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (lines == 0 && *first == 0)
			*first = first_event_time(buf, n);
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	}
	close(fd);
	return lines;
}

static const char **secret_values(struct runner *r)
{
	size_t n = r->spec != NULL ? r->spec->nsecrets : 0;
	const char **v = xcalloc(n + 1, sizeof(char *));

	for (size_t i = 0; i < n; i++)
		v[i] = r->spec->secrets[i].value;
	return v;
}

int runner_open_files(struct runner *r, struct err *e)
{
	char *log = attempt_path(r->dir, ATTEMPT_LOG);
	char *events = attempt_path(r->dir, ATTEMPT_EVENTS);
	const char **secrets = secret_values(r);
	double first;
	int rc = 0;

	r->next_seq = count_events(events, &first) + 1;
	if (!r->lookahead) /* a look-ahead build's bound is its own start */
		runner_attempt_start(r, first);
	r->log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (r->log_fd < 0) {
		rc = err_sys(e, TERR_IO, "open %s", log);
		goto out;
	}
	r->events_fd =
	    open(events, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (r->events_fd < 0) {
		rc = err_sys(e, TERR_IO, "open %s", events);
		goto out;
	}
	r->job_mask = mask_new(secrets);
	r->aux_mask = mask_new(secrets);
	r->job_log = xcalloc(1, sizeof(*r->job_log));
	r->aux_log = xcalloc(1, sizeof(*r->aux_log));
	logpipe_init(r->job_log, r->log_fd, r->job_mask, r->set.max_log_bytes);
	logpipe_init(r->aux_log, r->log_fd, r->aux_mask, r->set.max_log_bytes);
out:
	free(secrets);
	free(log);
	free(events);
	return rc;
}

void runner_close_files(struct runner *r)
{
	struct err e = {0};

	if (r->job_log != NULL)
		logpipe_finish(r->job_log, &e);
	if (r->aux_log != NULL)
		logpipe_finish(r->aux_log, &e);
	if (r->log_fd >= 0) /* synced with the final event (supervisor.c) */
		close(r->log_fd);
	if (r->events_fd >= 0)
		close(r->events_fd);
	r->log_fd = r->events_fd = -1;
	if (r->idle_watch_fd >= 0)
		close(r->idle_watch_fd);
	r->idle_watch_fd = -1;
	free(r->job_log);
	free(r->aux_log);
	r->job_log = r->aux_log = NULL;
	mask_free(r->job_mask);
	mask_free(r->aux_mask);
	r->job_mask = r->aux_mask = NULL;
}
