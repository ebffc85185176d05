#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *attempt_path(const char *dir, const char *file)
{
	return xasprintf("%s/%s", dir, file);
}

int attempt_lease_write(const char *dir, int64_t deadline_mono_ms,
                        int64_t deadline_wall_ms, struct err *e)
{
	char *path = attempt_path(dir, ATTEMPT_LEASE), line[64];
	int n = snprintf(line, sizeof(line), "%" PRId64 " %" PRId64 "\n",
	                 deadline_mono_ms, deadline_wall_ms);
	int r = file_replace(path, line, (size_t)n, 0600, e);

	free(path);
	return r;
}

int attempt_lease_read(const char *dir, int64_t *deadline_mono_ms,
                       struct err *e)
{
	char *path = attempt_path(dir, ATTEMPT_LEASE), *text = NULL, *sp;
	int r;

	if ((r = file_read_all(path, 256, &text, NULL, e)) < 0)
		goto out;
	sp = strchr(text, ' ');
	if (sp != NULL)
		*sp = '\0';
	if ((r = parse_i64(text, 0, INT64_MAX, deadline_mono_ms, e)) < 0)
		err_wrap(e, "%s", path);
out:
	free(text);
	free(path);
	return r;
}

/* Write o (consumed) canonically and atomically into dir/name, 0600;
 * durably (fsynced) when durable. */
static int write_json(const char *dir, const char *name, bool durable,
                      json_t *o, struct err *e)
{
	char *path = attempt_path(dir, name), *text = json_dump_canon(o);
	int r = durable ? file_write_atomic(path, text, strlen(text), 0600, e)
	                : file_replace(path, text, strlen(text), 0600, e);

	free(text);
	json_decref(o);
	free(path);
	return r;
}

int attempt_cancel_write(const char *dir, const char *reason, int64_t grace_ms,
                         struct err *e)
{
	return write_json(dir, ATTEMPT_CANCEL, true,
	                  json_pack("{s:s, s:f}", "reason", reason, "grace",
	                            (double)grace_ms / 1000.0),
	                  e);
}

int attempt_cancel_read(const char *dir, char reason[32], int64_t *grace_ms,
                        struct err *e)
{
	char *path = attempt_path(dir, ATTEMPT_CANCEL), *text = NULL;
	const char *rs = "cancelled";
	double grace = 10;
	json_t *o = NULL;
	size_t len;
	int r;

	if ((r = file_read_all(path, 4096, &text, &len, e)) < 0 ||
	    (r = json_parse(text, len, 4, &o, e)) < 0 ||
	    (r = json_get_str(o, "cancel", "reason", false, 31, &rs, e)) < 0 ||
	    (r = json_get_num(o, "cancel", "grace", false, 0, 86400, &grace,
	                      e)) < 0)
		goto out;
	snprintf(reason, 32, "%s", rs);
	*grace_ms = (int64_t)(grace * 1000);
out:
	json_decref(o);
	free(text);
	free(path);
	return r;
}

int attempt_state_write(const char *dir, const struct attempt_state *st,
                        bool durable, struct err *e)
{
	json_t *o = json_pack(
	    "{s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "runner_pid",
	    (json_int_t)st->runner_pid, "runner_start",
	    (json_int_t)st->runner_start, "job_pid", (json_int_t)st->job_pid,
	    "phase", st->phase, "launcher", st->launcher, "launcher_ref",
	    st->launcher_ref, "cgroup", st->cgroup);

	if (o != NULL && st->job_start != 0) { /* a detached sandbox's job */
		json_object_set_new(o, "job_start",
		                    json_integer((json_int_t)st->job_start));
		json_object_set_new(o, "log_start",
		                    json_integer((json_int_t)st->log_start));
	}
	return write_json(dir, ATTEMPT_STATE, durable, o, e);
}

static void copy_field(json_t *o, const char *key, char *dst, size_t size)
{
	const char *v = json_string_value(json_object_get(o, key));

	snprintf(dst, size, "%s", v ? v : "");
}

int attempt_state_read(const char *dir, struct attempt_state *st, struct err *e)
{
	char *path = attempt_path(dir, ATTEMPT_STATE), *text = NULL;
	json_t *o = NULL;
	size_t len;
	int r;

	memset(st, 0, sizeof(*st));
	if ((r = file_read_all(path, 65536, &text, &len, e)) < 0 ||
	    (r = json_parse(text, len, 4, &o, e)) < 0) {
		err_wrap(e, "%s", path);
		goto out;
	}
	st->runner_pid =
	    (pid_t)json_integer_value(json_object_get(o, "runner_pid"));
	st->runner_start =
	    (uint64_t)json_integer_value(json_object_get(o, "runner_start"));
	st->job_pid = (pid_t)json_integer_value(json_object_get(o, "job_pid"));
	st->job_start =
	    (uint64_t)json_integer_value(json_object_get(o, "job_start"));
	st->log_start = json_integer_value(json_object_get(o, "log_start"));
	copy_field(o, "phase", st->phase, sizeof(st->phase));
	copy_field(o, "launcher", st->launcher, sizeof(st->launcher));
	copy_field(o, "launcher_ref", st->launcher_ref,
	           sizeof(st->launcher_ref));
	copy_field(o, "cgroup", st->cgroup, sizeof(st->cgroup));
out:
	json_decref(o);
	free(text);
	free(path);
	return r;
}

int attempt_event_append(int fd, json_t *event, struct err *e)
{
	char *text = json_dump_record(event);
	size_t len = strlen(text);
	int r;

	text[len] = '\n'; /* replace the NUL: one write for the whole line */
	r = fd_write_all(fd, text, len + 1, e);
	free(text);
	return r;
}

size_t attempt_events_split(char *buf, size_t n, attempt_event_fn fn, void *arg,
                            int *rc, struct err *e)
{
	char *p = buf, *nl;
	size_t used = 0;

	*rc = 0;
	while ((nl = memchr(p, '\n', (size_t)(buf + n - p))) != NULL) {
		json_t *ev = NULL;

		*nl = '\0';
		if (json_parse(p, (size_t)(nl - p), ATTEMPT_EVENT_DEPTH, &ev,
		               NULL) < 0)
			ev = NULL;
		*rc = fn(arg, ev, p, e);
		json_decref(ev);
		if (*rc < 0)
			break;
		p = nl + 1;
		used = (size_t)(p - buf);
	}
	return used;
}

int attempt_events_read(const char *dir, attempt_event_fn fn, void *arg,
                        struct err *e)
{
	char *path = attempt_path(dir, ATTEMPT_EVENTS), *text = NULL;
	size_t len;
	int r;

	if ((r = file_read_all(path, ATTEMPT_EVENTS_MAX, &text, &len, e)) == 0)
		attempt_events_split(text, len, fn, arg, &r, e);
	free(text);
	free(path);
	return r;
}

uint64_t proc_start_time(pid_t pid)
{
	char path[64], *text = NULL, *p;
	unsigned long long start = 0;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (pid <= 0 || file_read_all(path, 8192, &text, &len, NULL) < 0)
		return 0;
	/* comm (field 2) may hold spaces and ')': skip to the last ')'.
	 * Then fields 3, 4, ... follow, one space apart; 22 is the start. */
	p = strrchr(text, ')');
	if (p != NULL && p[1] == ' ') {
		p += 2;
		for (int field = 3; field < 22 && p != NULL; field++) {
			p = strchr(p, ' ');
			if (p != NULL)
				p++;
		}
		if (p == NULL || sscanf(p, "%llu", &start) != 1)
			start = 0;
	}
	free(text);
	return start;
}

bool attempt_runner_alive(const struct attempt_state *st)
{
	uint64_t now;

	if (st->runner_pid <= 0)
		return false;
	now = proc_start_time(st->runner_pid);
	return now != 0 && now == st->runner_start;
}
