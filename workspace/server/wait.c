/* wait.c: long-polls without holding a thread.
 *
 * A handler that has nothing to say yet records the state generation
 * (wait_mark), checks, and parks its connection (wait_park: MHD suspend).
 * A state change bumps the generations (so a request between wait_mark
 * and wait_park checks again) and resumes only the parked requests it can
 * be news for (docs/performance.md F2): a job in the queue, the polls of
 * agents that could take it and have room (sched_wake_queued); a cancel,
 * a drain or an attempt's events, that agent's polls (ws_notify_agent); new
 * log bytes or a job's new state, that job's log readers (ws_notify_job).
 * ws_notify (everyone) is left for shutdown.  A sweeper thread resumes
 * requests whose deadline passed, every 100 ms expires lapsed leases
 * (sched_expire), every second applies retention (retention_sweep) and
 * offers still-queued jobs again (sched_wake_queued: a woken poll may have
 * died or been taken first). */
#include "workspace/server/http.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <microhttpd.h>
#include <string.h>
#include <time.h>

void wait_mark(struct req *r)
{
	pthread_mutex_lock(&r->ws->wait_mu);
	r->gen = r->ws->gen[r->wait_kind];
	pthread_mutex_unlock(&r->ws->wait_mu);
}

bool wait_park(struct req *r)
{
	struct ws *ws = r->ws;
	bool parked = false;

	pthread_mutex_lock(&ws->wait_mu);
	if (ws->gen[r->wait_kind] == r->gen && !ws->stopping &&
	    now_mono_ms() < r->deadline_ms) {
		r->wnext = (struct req *)ws->waiters[r->wait_kind];
		ws->waiters[r->wait_kind] = (struct waiter *)r;
		MHD_suspend_connection(r->conn);
		parked = true;
	}
	pthread_mutex_unlock(&ws->wait_mu);
	return parked;
}

/* Resume the parked requests of one kind (all, or those past their
 * deadline); wait_mu held. */
static void resume_kind(struct ws *ws, int kind, bool all, int64_t now)
{
	struct req **pp = (struct req **)&ws->waiters[kind], *r;

	while ((r = *pp) != NULL) {
		if (all || r->deadline_ms <= now) {
			*pp = r->wnext;
			r->wnext = NULL;
			MHD_resume_connection(r->conn);
		} else {
			pp = &r->wnext;
		}
	}
}

static void resume_locked(struct ws *ws, bool all, int64_t now)
{
	resume_kind(ws, WAIT_LEASE, all, now);
	resume_kind(ws, WAIT_LOG, all, now);
}

void ws_notify(struct ws *ws)
{
	pthread_mutex_lock(&ws->wait_mu);
	ws->gen[WAIT_LEASE]++;
	ws->gen[WAIT_LOG]++;
	resume_locked(ws, true, 0);
	pthread_mutex_unlock(&ws->wait_mu);
}

/* Resume the parked lease polls of one agent; wait_mu held. */
static void resume_agent(struct ws *ws, const char *agent_id)
{
	struct req **pp = (struct req **)&ws->waiters[WAIT_LEASE], *r;

	while ((r = *pp) != NULL) {
		if (strcmp(r->agent_id, agent_id) == 0) {
			*pp = r->wnext;
			r->wnext = NULL;
			MHD_resume_connection(r->conn);
		} else {
			pp = &r->wnext;
		}
	}
}

/* Resume the parked log readers of one job (all when job is 0); wait_mu
 * held. */
static void resume_job(struct ws *ws, int64_t job)
{
	struct req **pp = (struct req **)&ws->waiters[WAIT_LOG], *r;

	while ((r = *pp) != NULL) {
		if (job == 0 || r->wait_job == job) {
			*pp = r->wnext;
			r->wnext = NULL;
			MHD_resume_connection(r->conn);
		} else {
			pp = &r->wnext;
		}
	}
}

/* A change that is news only for one agent's polls: the generations
 * still move, so a request between wait_mark and wait_park of any agent
 * checks again, but only that agent's parked polls are resumed. */
void ws_notify_agent(struct ws *ws, const char *agent_id)
{
	pthread_mutex_lock(&ws->wait_mu);
	ws->gen[WAIT_LEASE]++;
	resume_agent(ws, agent_id);
	pthread_mutex_unlock(&ws->wait_mu);
}

void ws_notify_job(struct ws *ws, int64_t job)
{
	pthread_mutex_lock(&ws->wait_mu);
	ws->gen[WAIT_LOG]++;
	resume_job(ws, job);
	pthread_mutex_unlock(&ws->wait_mu);
}

void ws_notify_logs(struct ws *ws)
{
	ws_notify_job(ws, 0);
}

void wait_counts(struct ws *ws, int64_t *lease, int64_t *log)
{
	struct req *r;

	*lease = *log = 0;
	pthread_mutex_lock(&ws->wait_mu);
	for (r = (struct req *)ws->waiters[WAIT_LEASE]; r; r = r->wnext)
		(*lease)++;
	for (r = (struct req *)ws->waiters[WAIT_LOG]; r; r = r->wnext)
		(*log)++;
	pthread_mutex_unlock(&ws->wait_mu);
}

int wait_parked_agents(struct ws *ws, char (**ids)[48])
{
	struct req *r;
	int n = 0, cap = 0;

	*ids = NULL;
	pthread_mutex_lock(&ws->wait_mu);
	/* a poll that checked before the change and parks after this
	 * snapshot must check again */
	ws->gen[WAIT_LEASE]++;
	for (r = (struct req *)ws->waiters[WAIT_LEASE]; r; r = r->wnext) {
		if (r->lease_room <= 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			*ids = realloc(*ids, (size_t)cap * sizeof(**ids));
			if (*ids == NULL)
				fatalx("out of memory");
		}
		memcpy((*ids)[n++], r->agent_id, sizeof(**ids));
	}
	pthread_mutex_unlock(&ws->wait_mu);
	return n;
}

void wait_resume_agents(struct ws *ws, char (*ids)[48], const bool *pick, int n)
{
	pthread_mutex_lock(&ws->wait_mu);
	for (int i = 0; i < n; i++)
		if (pick[i])
			resume_agent(ws, ids[i]);
	pthread_mutex_unlock(&ws->wait_mu);
}

static void *sweeper_main(void *arg)
{
	struct ws *ws = arg;
	struct timespec ts;
	int64_t last_expire = 0, last_retention = 0;

	pthread_mutex_lock(&ws->wait_mu);
	while (!ws->stopping) {
		/* The condition variable runs on CLOCK_MONOTONIC (wait_start):
		 * a wall-clock step must not stall the sweeper. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ws->wait_cond, &ws->wait_mu, &ts);
		resume_locked(ws, false, now_mono_ms());
		if (now_mono_ms() - last_expire >= 100) {
			bool sweep = now_mono_ms() - last_retention >= 1000;
			last_expire = now_mono_ms();
			if (sweep)
				last_retention = last_expire;
			pthread_mutex_unlock(&ws->wait_mu);
			store_lock(ws);
			sched_clock_check(ws);
			if (sweep)
				lease_hb_flush(ws);
			store_unlock(ws);
			if (sched_expire(ws) > 0) {
				ws_notify_logs(ws);
				sched_wake_queued(ws);
			}
			if (sweep) {
				retention_sweep(ws);
				sched_wake_queued(ws);
			}
			pthread_mutex_lock(&ws->wait_mu);
		}
	}
	pthread_mutex_unlock(&ws->wait_mu);
	return NULL;
}

int wait_start(struct ws *ws, struct err *e)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&ws->wait_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ws->wait_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&ws->sweeper, NULL, sweeper_main, ws) != 0)
		return err_set(e, TERR_FAIL, "cannot start the sweeper thread");
	return 0;
}

/* Stop parking, resume everyone (they answer 503), stop the sweeper. */
void wait_stop(struct ws *ws)
{
	pthread_mutex_lock(&ws->wait_mu);
	ws->stopping = true;
	resume_locked(ws, true, 0);
	pthread_cond_broadcast(&ws->wait_cond);
	pthread_mutex_unlock(&ws->wait_mu);
	pthread_join(ws->sweeper, NULL);
}
