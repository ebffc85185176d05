/* attempt-clock.c: when the attempt started, and so its timeout deadline:
 * the job's `timeout` counts from the attempt's first event, through the
 * source fetch, the environment build and the run (docs/jobspec.md), so a
 * build that hangs is stopped like a job that hangs.  Its own file: the
 * fence's users (source, env builders, run loop) need no more of the
 * runner's I/O. */
#include "common/attempt.h"
#include "common/util.h"
#include "runner/runner.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int64_t runner_timeout_deadline(const struct runner *r)
{
	if (r->spec == NULL || r->spec->timeout_ms <= 0)
		return -1;
	return r->attempt_started_ms + r->spec->timeout_ms;
}

void runner_attempt_start(struct runner *r)
{
	char *path = attempt_path(r->dir, ATTEMPT_EVENTS), line[4096];
	int64_t now = now_mono_ms(), wall = now_wall_ms(), first;
	ssize_t n = -1;
	json_t *ev = NULL;
	char *nl;
	int fd;

	r->attempt_started_ms = now;
	/* only the first line: a fresh attempt has no events file */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, line, sizeof(line) - 1);
		close(fd);
	}
	free(path);
	if (n <= 0)
		return;
	line[n] = '\0';
	if ((nl = strchr(line, '\n')) == NULL)
		return;
	*nl = '\0';
	ev = json_loads(line, 0, NULL);
	if (json_is_number(json_object_get(ev, "time"))) {
		first =
		    (int64_t)(json_number_value(json_object_get(ev, "time")) *
		              1000.0);
		if (first > 0 && first <= wall)
			r->attempt_started_ms = now - (wall - first);
	}
	json_decref(ev);
}
