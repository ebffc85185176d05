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
 * died or been taken first).  Parked lease polls are found by agent id (a
 * hash table) and every parked request by deadline (a heap): no wake-up
 * walks all 10,000 of them. */
#include "workspace/server/http.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <microhttpd.h>
#include <string.h>
#include <time.h>

bool wait_first(struct req *r, int64_t wait_ms)
{
	if (r->deadline_ms != 0)
		return false; /* woken again */
	if (wait_ms > r->ws->conf.poll_max_wait_ms)
		wait_ms = r->ws->conf.poll_max_wait_ms;
	r->deadline_ms = now_mono_ms() + wait_ms;
	return true;
}

void wait_mark(struct req *r)
{
	pthread_mutex_lock(&r->ws->wait_mu);
	r->gen = r->ws->gen[r->wait_kind];
	pthread_mutex_unlock(&r->ws->wait_mu);
}

/* The parked requests: one doubly linked list per wait kind (deadlines,
 * everyone), and the lease polls also in a hash table by agent id, so
 * that waking one agent's polls does not walk the other 10,000
 * (docs/performance.md F2).  wait_mu guards both. */
#define WAIT_BUCKETS 16384

static size_t agent_bucket(const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (size_t)(h & (WAIT_BUCKETS - 1));
}

/* The parked requests of each kind also sit in a binary min-heap by
 * deadline, so that the sweeper finds the ones whose wait passed without
 * walking all of them every 50 ms. */
static void heap_set(struct ws *ws, int kind, size_t i, struct req *r)
{
	((struct req **)ws->wait_heap[kind])[i] = r;
	r->heap_idx = i;
}

static void heap_up(struct ws *ws, int kind, size_t i)
{
	struct req **h = (struct req **)ws->wait_heap[kind], *r = h[i];

	while (i > 0 && h[(i - 1) / 2]->deadline_ms > r->deadline_ms) {
		heap_set(ws, kind, i, h[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(ws, kind, i, r);
}

static void heap_down(struct ws *ws, int kind, size_t i)
{
	struct req **h = (struct req **)ws->wait_heap[kind], *r = h[i];
	size_t n = (size_t)ws->nparked[kind];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1]->deadline_ms < h[c]->deadline_ms)
			c++;
		if (h[c]->deadline_ms >= r->deadline_ms)
			break;
		heap_set(ws, kind, i, h[c]);
		i = c;
	}
	heap_set(ws, kind, i, r);
}

static void heap_add(struct ws *ws, struct req *r)
{
	int k = r->wait_kind;
	size_t n = (size_t)ws->nparked[k];

	if (n == ws->wait_heap_cap[k]) {
		ws->wait_heap_cap[k] = n ? n * 2 : 1024;
		ws->wait_heap[k] =
		    realloc(ws->wait_heap[k],
		            ws->wait_heap_cap[k] * sizeof(struct req *));
		if (ws->wait_heap[k] == NULL)
			fatalx("out of memory");
	}
	heap_set(ws, k, n, r);
	ws->nparked[k]++;
	heap_up(ws, k, n);
}

static void heap_del(struct ws *ws, struct req *r)
{
	int k = r->wait_kind;
	struct req **h = (struct req **)ws->wait_heap[k], *m;
	size_t i = r->heap_idx, last = (size_t)--ws->nparked[k];

	if (i == last)
		return;
	m = h[last];
	heap_set(ws, k, i, m);
	heap_down(ws, k, i);
	heap_up(ws, k, m->heap_idx);
}

static void link_parked(struct ws *ws, struct req *r)
{
	struct req **head = (struct req **)&ws->waiters[r->wait_kind];

	r->wprev = NULL;
	r->wnext = *head;
	if (*head != NULL)
		(*head)->wprev = r;
	*head = r;
	heap_add(ws, r);
	if (r->wait_kind == WAIT_LEASE) {
		struct req **b;
		if (ws->wait_buckets == NULL)
			ws->wait_buckets =
			    xcalloc(WAIT_BUCKETS, sizeof(*ws->wait_buckets));
		r->wbucket = agent_bucket(r->agent_id);
		b = (struct req **)&ws->wait_buckets[r->wbucket];
		r->hprev = NULL;
		r->hnext = *b;
		if (*b != NULL)
			(*b)->hprev = r;
		*b = r;
	}
}

/* Take r off the lists and resume it; wait_mu held. */
static void resume_req(struct ws *ws, struct req *r)
{
	if (r->wprev != NULL)
		r->wprev->wnext = r->wnext;
	else
		ws->waiters[r->wait_kind] = (struct waiter *)r->wnext;
	if (r->wnext != NULL)
		r->wnext->wprev = r->wprev;
	if (r->wait_kind == WAIT_LEASE) {
		if (r->hprev != NULL)
			r->hprev->hnext = r->hnext;
		else
			ws->wait_buckets[r->wbucket] =
			    (struct waiter *)r->hnext;
		if (r->hnext != NULL)
			r->hnext->hprev = r->hprev;
	}
	r->wnext = r->wprev = r->hnext = r->hprev = NULL;
	heap_del(ws, r);
	MHD_resume_connection(r->conn);
}

bool wait_park(struct req *r)
{
	struct ws *ws = r->ws;
	bool parked = false;

	pthread_mutex_lock(&ws->wait_mu);
	if (ws->gen[r->wait_kind] == r->gen && !ws->stopping &&
	    now_mono_ms() < r->deadline_ms) {
		link_parked(ws, r);
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
	struct req *r = (struct req *)ws->waiters[kind], *next;

	if (!all) {
		while (ws->nparked[kind] > 0 &&
		       (r = ((struct req **)ws->wait_heap[kind])[0])
		               ->deadline_ms <= now)
			resume_req(ws, r);
		return;
	}
	for (; r != NULL; r = next) {
		next = r->wnext;
		resume_req(ws, r);
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
	struct req *r, *next;

	if (ws->wait_buckets == NULL)
		return; /* nothing parked yet */
	r = (struct req *)ws->wait_buckets[agent_bucket(agent_id)];
	for (; r != NULL; r = next) {
		next = r->hnext;
		if (strcmp(r->agent_id, agent_id) == 0)
			resume_req(ws, r);
	}
}

/* Resume the parked log readers of one job (all when job is 0); wait_mu
 * held. */
static void resume_job(struct ws *ws, int64_t job)
{
	struct req *r = (struct req *)ws->waiters[WAIT_LOG], *next;

	for (; r != NULL; r = next) {
		next = r->wnext;
		if (job == 0 || r->wait_job == job)
			resume_req(ws, r);
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
	pthread_mutex_lock(&ws->wait_mu);
	*lease = ws->nparked[WAIT_LEASE];
	*log = ws->nparked[WAIT_LOG];
	pthread_mutex_unlock(&ws->wait_mu);
}

int wait_wake_fitting(struct ws *ws,
                      bool (*fits)(const struct agent_fit *, void *), void *arg,
                      int max, bool need_slot)
{
	struct req *r, *next;
	int n = 0;

	pthread_mutex_lock(&ws->wait_mu);
	/* a poll that checked before the change and parks after this scan
	 * must check again */
	ws->gen[WAIT_LEASE]++;
	for (r = (struct req *)ws->waiters[WAIT_LEASE]; r && n < max;
	     r = next) {
		next = r->wnext;
		if (r->lease_room <= 0 || (need_slot && r->lease_slots <= 0) ||
		    r->fit == NULL || !fits(r->fit, arg))
			continue;
		resume_req(ws, r);
		n++;
	}
	pthread_mutex_unlock(&ws->wait_mu);
	return n;
}

int wait_parked_fitting(struct ws *ws,
                        bool (*fits)(const struct agent_fit *, void *),
                        void *arg, char (*ids)[48], int max)
{
	struct req *r;
	int n = 0;

	pthread_mutex_lock(&ws->wait_mu);
	for (r = (struct req *)ws->waiters[WAIT_LEASE]; r && n < max;
	     r = r->wnext) {
		if (r->lease_room <= 0 || r->lease_slots <= 0 ||
		    r->fit == NULL || !fits(r->fit, arg))
			continue;
		snprintf(ids[n++], 48, "%s", r->agent_id);
	}
	pthread_mutex_unlock(&ws->wait_mu);
	return n;
}

void wait_parked_take(struct ws *ws, const char *agent_id)
{
	struct req *r;

	pthread_mutex_lock(&ws->wait_mu);
	for (r = (struct req *)ws->waiters[WAIT_LEASE]; r; r = r->wnext) {
		if (strcmp(r->agent_id, agent_id) != 0)
			continue;
		r->lease_room--;
		r->lease_slots--;
	}
	pthread_mutex_unlock(&ws->wait_mu);
}

/* WAL checkpoints off the request path (docs/performance.md F2c): SQLite
 * checkpoints from inside the COMMIT that takes the WAL past 1,000 pages,
 * so one request in every few dozen (under store_lock, every other one
 * waiting) wrote the pages back and fsynced the database: the submit and
 * dispatch p99.  The sweeper does it instead, once a second, on a
 * connection of its own: a PASSIVE checkpoint runs beside the writer
 * (WAL), so nobody waits on it.  Durability is unchanged: each COMMIT
 * still syncs the WAL (synchronous=FULL); a checkpoint only moves synced
 * pages into the database file. */
static sqlite3 *ckpt_db;

static void ckpt_open(struct ws *ws)
{
	const char *path;

	store_lock(ws);
	path = sqlite3_db_filename(ws->db, "main");
	if (path != NULL && *path != '\0' &&
	    sqlite3_open_v2(path, &ckpt_db, SQLITE_OPEN_READWRITE, NULL) ==
	        SQLITE_OK &&
	    sqlite3_exec(ckpt_db, "PRAGMA synchronous=FULL", NULL, NULL,
	                 NULL) == SQLITE_OK) {
		sqlite3_wal_autocheckpoint(ws->db, 0);
	} else {
		log_warn("no checkpoint connection (%s): SQLite checkpoints "
		         "inside commits",
		         ckpt_db ? sqlite3_errmsg(ckpt_db)
		                 : "no database path");
		sqlite3_close(ckpt_db);
		ckpt_db = NULL;
	}
	store_unlock(ws);
}

static void ckpt_run(void)
{
	if (ckpt_db != NULL)
		sqlite3_wal_checkpoint_v2(
		    ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
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
				ckpt_run(); /* no lock: beside the writer */
			}
			pthread_mutex_lock(&ws->wait_mu);
		}
	}
	pthread_mutex_unlock(&ws->wait_mu);
	ckpt_run();
	sqlite3_close(ckpt_db); /* the last close (store_close) ends the WAL */
	ckpt_db = NULL;
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
	ckpt_open(ws);
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

void wait_free(struct ws *ws)
{
	free(ws->wait_buckets);
	free(ws->wait_heap[WAIT_LEASE]);
	free(ws->wait_heap[WAIT_LOG]);
	ws->wait_buckets = NULL;
	ws->wait_heap[WAIT_LEASE] = ws->wait_heap[WAIT_LOG] = NULL;
	ws->wait_heap_cap[WAIT_LEASE] = ws->wait_heap_cap[WAIT_LOG] = 0;
}
