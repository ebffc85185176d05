/* progress.c: `TETHER_PROGRESS step=N` lines in the job's
 * output (docs/checkpointing.md).  The last value goes into `progress`
 * events (at most one a second) and the final event; once a job has
 * printed one, hang_timeout measures time without a new value instead of
 * time without output. */
#include "common/err.h"
#include "common/log.h"
#include "runner/supervisor/supervisor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PROGRESS_PREFIX "TETHER_PROGRESS step="

/* One complete line: a new value when it is a progress line. */
static bool progress_line(struct progress *p, struct runner *r)
{
	size_t plen = strlen(PROGRESS_PREFIX);
	char *end;
	double v;

	p->line[p->len] = '\0';
	if (p->len <= plen || strncmp(p->line, PROGRESS_PREFIX, plen) != 0)
		return false;
	v = strtod(p->line + plen, &end);
	if (end == p->line + plen || !isfinite(v) ||
	    strspn(end, " \t\r") != strlen(end))
		return false;
	if (r->has_progress && v == r->progress)
		return false;
	r->has_progress = true;
	r->progress = v;
	p->pending = true;
	return true;
}

/* memchr for the newlines: the job's pipe is drained at copy speed, and
 * only the start of a line that may still be a progress line is copied
 * (docs/performance.md F5). */
bool progress_feed(struct progress *p, struct runner *r, const char *data,
                   size_t n)
{
	size_t plen = strlen(PROGRESS_PREFIX);
	const char *s = data, *end = data + n;
	bool advanced = false;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t seg = (size_t)((nl != NULL ? nl : end) - s);

		if (!p->skip && p->len + seg >= sizeof(p->line)) {
			p->skip = true; /* too long to be a progress line */
		} else if (!p->skip) {
			memcpy(p->line + p->len, s, seg);
			p->len += seg;
			if (memcmp(p->line, PROGRESS_PREFIX,
			           p->len < plen ? p->len : plen) != 0)
				p->skip = true; /* not a progress line */
		}
		if (nl == NULL)
			break;
		if (!p->skip && progress_line(p, r))
			advanced = true;
		p->len = 0;
		p->skip = false;
		s = nl + 1;
	}
	return advanced;
}

void progress_report(struct progress *p, struct runner *r, int64_t now_ms,
                     bool force)
{
	struct err e = {0};
	json_t *ev;

	if (!p->pending ||
	    (!force && now_ms - p->last_event_ms < PROGRESS_EVENT_MS))
		return;
	ev = json_pack("{s:s, s:f}", "type", "progress", "value", r->progress);
	if (runner_event(r, ev, &e) < 0)
		log_warn("job=%s progress event: %s", r->job_id, e.msg);
	json_decref(ev);
	p->pending = false;
	p->last_event_ms = now_ms;
}

int progress_wait_ms(const struct progress *p, int64_t now_ms)
{
	int64_t w;

	if (!p->pending)
		return FENCE_CHECK_MS;
	w = p->last_event_ms + PROGRESS_EVENT_MS - now_ms;
	return w < 0 ? 0 : (int)w;
}
