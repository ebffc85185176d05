/* harden.c: defensive checks on what the agent is given (harden.h). */
#include "agent/harden.h"
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/loop.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

int64_t harden_ttl_ms(const json_t *ttl)
{
	double s;

	if (!json_is_number(ttl))
		return -1;
	s = json_number_value(ttl);
	if (!isfinite(s))
		return -1;
	if (s * 1000.0 < (double)HARDEN_TTL_MIN_MS)
		return HARDEN_TTL_MIN_MS;
	if (s * 1000.0 > (double)HARDEN_TTL_MAX_MS)
		return HARDEN_TTL_MAX_MS;
	return (int64_t)(s * 1000.0);
}

static bool harden_db_corrupt(const struct err *e)
{
	return strstr(e->msg, "file is not a database") != NULL ||
	       strstr(e->msg, "malformed") != NULL;
}

static int harden_db_aside(const char *path, struct err *e)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	long long now = (long long)time(NULL);
	int r = 0;

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		char *from = xasprintf("%s%s", path, sfx[i]);
		char *to = xasprintf("%s.corrupt-%lld%s", path, now, sfx[i]);

		if (rename(from, to) == 0)
			log_error("%s is corrupt: moved aside to %s", from, to);
		else if (errno != ENOENT && r == 0)
			r = err_sys(e, TERR_IO, "rename %s to %s", from, to);
		free(from);
		free(to);
	}
	return r;
}

int harden_db_open(const char *path, sqlite3 **out, struct err *e)
{
	int r = db_open(path, out, e);

	if (r == 0 || !harden_db_corrupt(e))
		return r;
	log_error("agent.db: %s: setting it aside and starting with a fresh "
	          "one; the workspace reconciles the attempts it had",
	          e->msg);
	if ((r = harden_db_aside(path, e)) < 0)
		return r;
	return db_open(path, out, e);
}

bool harden_drain_overdue(struct agent *a)
{
	int64_t now = now_mono_ms(), left;

	if (a->drain_since_mono == 0)
		a->drain_since_mono = now;
	left = a->drain_since_mono + a->conf.kill_grace_ms - now;
	if (left > 0) {
		if (!loop_timer_armed(a->sched_timer))
			loop_timer_set(a->sched_timer, left);
		return false;
	}
	return true;
}

int64_t harden_disk_min_free(const struct agent_conf *c)
{
	int64_t n = 0;

	agent_conf_disk(c->state_dir_min_free, c->state_dir,
	                "state_dir_min_free", &n, NULL);
	return n > HARDEN_DISK_MIN_FREE ? n : HARDEN_DISK_MIN_FREE;
}

bool harden_disk_check(const char *dir, int64_t min_free, char *why, size_t n)
{
	struct statvfs sv;
	long long avail;

	if (dir == NULL || statvfs(dir, &sv) < 0)
		return false;
	avail = (long long)sv.f_bavail * (long long)sv.f_frsize;
	if (avail >= min_free)
		return false;
	if (why != NULL)
		snprintf(why, n,
		         "state dir nearly full (disk space): %s has %lld KiB "
		         "free, below state_dir_min_free (%lld KiB): not "
		         "taking or starting jobs",
		         dir, avail / 1024, (long long)min_free / 1024);
	return true;
}

bool harden_disk_low(struct agent *a)
{
	char why[512];
	bool low =
	    harden_disk_check(a->conf.state_dir, harden_disk_min_free(&a->conf),
	                      why, sizeof(why));

	if (low && !a->disk_low) {
		log_error("%s", why);
		housekeeping_soon(a); /* the budget may free some */
	} else if (!low && a->disk_low)
		log_info("space in state dir %s again: taking jobs",
		         a->conf.state_dir);
	a->disk_low = low;
	return low;
}

struct harden_hb {
	char *job;
	int64_t attempt;
};

static void harden_handback_done(void *arg, const struct tp_reply *rep)
{
	struct harden_hb *h = arg;

	if (rep->code == 200)
		log_info("job=%s attempt=%lld handed back (not recorded)",
		         h->job, (long long)h->attempt);
	else
		log_error("job=%s attempt=%lld: handback failed: %s", h->job,
		          (long long)h->attempt,
		          rep->code < 0 ? rep->err.msg : "refused");
	free(h->job);
	free(h);
}

void harden_handback(struct agent *a, const char *job, int64_t attempt,
                     const char *why)
{
	struct harden_hb *h;
	struct tp_call *call = NULL;
	struct err e = {0};

	if (a->tp == NULL || a->t == NULL)
		return;
	log_error("job=%s attempt=%lld cannot be recorded (%s): handing it "
	          "back",
	          job, (long long)attempt, why);
	h = xcalloc(1, sizeof(*h));
	h->job = xstrdup(job);
	h->attempt = attempt;
	if (a->tp->handback(a->t, job, attempt, harden_handback_done, h, &call,
	                    &e) < 0) {
		log_error("job=%s: handback: %s", job, e.msg);
		free(h->job);
		free(h);
	}
}
