/* fence.c: cancel, timeout and lease decisions (see
 * supervisor.h and docs/state-dir.md "The lease file"). */
#include "common/attempt.h"
#include "common/err.h"
#include "runner/fence.h"

#include <stdio.h>
#include <string.h>

void fence_init(struct fence *f)
{
	f->lease_deadline_ms = -1;
	f->timeout_deadline_ms = -1;
	f->cancel_reason[0] = '\0';
	f->cancel_grace_ms = -1;
	f->hang_ms = 0;
	f->last_output_ms = 0;
}

void fence_reload(struct fence *f, const char *dir)
{
	struct err e = {0};
	int64_t deadline, grace;
	char reason[32];
	int r;

	r = attempt_lease_read(dir, &deadline, &e);
	if (r == 0)
		f->lease_deadline_ms = deadline;
	else if (r == TERR_NOTFOUND)
		f->lease_deadline_ms = -1;
	if (f->cancel_reason[0] == '\0' &&
	    attempt_cancel_read(dir, reason, &grace, &e) == 0) {
		snprintf(f->cancel_reason, sizeof(f->cancel_reason), "%s",
		         reason[0] ? reason : "cancelled");
		f->cancel_grace_ms = grace;
	}
}

/* The reasons an agent may give in `cancel`, as static strings (they
 * outlive the fence); anything else reads as "cancelled". */
static const char *cancel_reason(const char *given)
{
	static const char *const known[] = {
	    "cancelled", "timed_out", "preempted", "lost", "hung", NULL};

	for (size_t i = 0; known[i] != NULL; i++)
		if (strcmp(given, known[i]) == 0)
			return known[i];
	return "cancelled";
}

const char *fence_check(const struct fence *f, int64_t now_ms)
{
	if (f->cancel_reason[0] != '\0')
		return cancel_reason(f->cancel_reason);
	if (f->lease_deadline_ms >= 0 && now_ms >= f->lease_deadline_ms)
		return "lost";
	if (f->timeout_deadline_ms >= 0 && now_ms >= f->timeout_deadline_ms)
		return "timed_out";
	if (f->hang_ms > 0 && now_ms >= f->last_output_ms + f->hang_ms)
		return "hung";
	return NULL;
}

static int64_t until(int64_t deadline, int64_t now_ms, int64_t best)
{
	if (deadline < 0)
		return best;
	if (deadline - now_ms < best)
		return deadline - now_ms < 0 ? 0 : deadline - now_ms;
	return best;
}

int fence_wait_ms(const struct fence *f, int64_t now_ms)
{
	int64_t w = FENCE_CHECK_MS;

	w = until(f->lease_deadline_ms, now_ms, w);
	w = until(f->timeout_deadline_ms, now_ms, w);
	if (f->hang_ms > 0)
		w = until(f->last_output_ms + f->hang_ms, now_ms, w);
	return (int)w;
}
