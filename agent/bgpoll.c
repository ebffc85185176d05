/* bgpoll.c: see bgpoll.h. Shared by slurm-poll.c and spark-poll.c. */
#include "agent/bgpoll.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct bgpoll {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool stop, failing;
	int64_t period_ms;
	const struct bgpoll_ops *ops;
	void *ctx;
	json_t *latest; /* NULL before the first answer or on error */
};

static void bgpoll_unref(struct bgpoll *p)
{
	bool last;

	pthread_mutex_lock(&p->mu);
	last = --p->refs == 0;
	pthread_mutex_unlock(&p->mu);
	if (!last)
		return;
	json_decref(p->latest);
	if (p->ops->free_ctx != NULL)
		p->ops->free_ctx(p->ctx);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Keep one answer (p->mu held); log only when it starts or stops
 * failing. */
static void bgpoll_store(struct bgpoll *p, int r, json_t *v,
                         const struct err *e)
{
	if (r < 0 && !p->failing)
		log_warn("%s: %s", p->ops->what, e->msg);
	else if (r == 0 && p->failing)
		log_info("%s: %s", p->ops->what, p->ops->recovered);
	p->failing = r < 0;
	json_decref(p->latest);
	p->latest = NULL;
	if (r == 0)
		p->latest = v;
	else
		json_decref(v);
}

static void bgpoll_sleep(struct bgpoll *p)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += p->period_ms / 1000;
	ts.tv_nsec += (p->period_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (!p->stop &&
	       pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
		;
}

static void *bgpoll_main(void *arg)
{
	struct bgpoll *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct err e = {0};
		json_t *v = NULL;
		int r;

		pthread_mutex_unlock(&p->mu);
		r = p->ops->fetch(p->ctx, &v, &e);
		pthread_mutex_lock(&p->mu);
		bgpoll_store(p, r, v, &e);
		bgpoll_sleep(p);
	}
	pthread_mutex_unlock(&p->mu);
	bgpoll_unref(p);
	return NULL;
}

struct bgpoll *bgpoll_start(const struct bgpoll_ops *ops, void *ctx,
                            int64_t period_ms, struct err *e)
{
	struct bgpoll *p = xcalloc(1, sizeof(*p));
	pthread_condattr_t ca;
	pthread_t th;
	int r;

	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->refs = 2;
	p->ops = ops;
	p->ctx = ctx;
	p->period_ms = period_ms;
	if ((r = pthread_create(&th, NULL, bgpoll_main, p)) != 0) {
		p->refs = 1;
		bgpoll_unref(p);
		errno = r;
		err_sys(e, TERR_IO, "%s thread", ops->what);
		return NULL;
	}
	pthread_detach(th);
	return p;
}

void bgpoll_stop(struct bgpoll *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	bgpoll_unref(p);
}

json_t *bgpoll_latest(struct bgpoll *p)
{
	json_t *v = NULL;

	if (p == NULL)
		return NULL;
	pthread_mutex_lock(&p->mu);
	if (p->latest != NULL)
		v = json_deep_copy(p->latest);
	pthread_mutex_unlock(&p->mu);
	return v;
}
