/* slurm-poll.c: the Slurm partitions for the heartbeat (issue 10).
 * slurm_capacity() runs two scontrol commands (up to 10 s each), so a
 * worker thread calls it at heartbeat pace and keeps the latest answer;
 * the event loop only copies it under a mutex when it builds a lease or
 * registration body, and never waits for scontrol. */
#include "agent/agent.h"
#include "agent/slurm-capacity.h"

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slurm_poll {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool stop, failing;
	int64_t period_ms;
	json_t *parts; /* latest answer; NULL before the first or on error */
};

static void slurm_poll_unref(struct slurm_poll *p)
{
	bool last;

	pthread_mutex_lock(&p->mu);
	last = --p->refs == 0;
	pthread_mutex_unlock(&p->mu);
	if (!last)
		return;
	json_decref(p->parts);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Store one answer (p->mu held); log only when it starts or stops
 * failing. */
static void slurm_poll_store(struct slurm_poll *p, int r, json_t *parts,
                             const struct err *e)
{
	if (r < 0 && !p->failing)
		log_warn("slurm capacity: %s", e->msg);
	else if (r == 0 && p->failing)
		log_info("slurm capacity: scontrol answers again");
	else if (r == 0)
		log_debug("slurm capacity: %zu partitions",
		          json_array_size(parts));
	p->failing = r < 0;
	json_decref(p->parts);
	p->parts = r < 0 ? NULL : parts;
}

static void slurm_poll_sleep(struct slurm_poll *p)
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

static void *slurm_poll_main(void *arg)
{
	struct slurm_poll *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct err e = {0};
		json_t *parts = NULL;
		int r;

		pthread_mutex_unlock(&p->mu);
		r = slurm_capacity(&parts, &e);
		pthread_mutex_lock(&p->mu);
		slurm_poll_store(p, r, parts, &e);
		slurm_poll_sleep(p);
	}
	pthread_mutex_unlock(&p->mu);
	slurm_poll_unref(p);
	return NULL;
}

static bool slurm_poll_wanted(const struct agent *a)
{
	const char *m = a->conf.slurm_capacity;

	/* auto: Slurm is this node's business only when configured so */
	if (m == NULL || strcmp(m, "auto") == 0)
		return a->cap.slurm &&
		       ((a->conf.default_launcher != NULL &&
		         strcmp(a->conf.default_launcher, "slurm") == 0) ||
		        a->conf.slurm_partition != NULL);
	return strcmp(m, "on") == 0;
}

int slurm_poll_start(struct agent *a, struct err *e)
{
	struct slurm_poll *p;
	pthread_condattr_t ca;
	pthread_t th;
	int r;

	if (!slurm_poll_wanted(a))
		return 0;
	p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->refs = 2;
	p->period_ms =
	    a->conf.heartbeat_ms > 1000 ? a->conf.heartbeat_ms : 1000;
	if ((r = pthread_create(&th, NULL, slurm_poll_main, p)) != 0) {
		p->refs = 1;
		slurm_poll_unref(p);
		errno = r;
		return err_sys(e, TERR_IO, "slurm capacity thread");
	}
	pthread_detach(th);
	a->slurm = p;
	log_info("slurm capacity: reported every %lld ms",
	         (long long)p->period_ms);
	return 0;
}

/* The thread may be inside scontrol: it frees the state when it is
 * back, the agent does not wait for it. */
void slurm_poll_stop(struct agent *a)
{
	struct slurm_poll *p = a->slurm;

	if (p == NULL)
		return;
	a->slurm = NULL;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	slurm_poll_unref(p);
}

json_t *slurm_poll_capacity(struct agent *a)
{
	json_t *cap = capacity_json(&a->cap), *parts = NULL;
	struct slurm_poll *p = a->slurm;

	spark_poll_add(a, cap); /* spark-poll.c */
	if (p == NULL)
		return cap;
	pthread_mutex_lock(&p->mu);
	if (p->parts != NULL)
		parts = json_deep_copy(p->parts);
	pthread_mutex_unlock(&p->mu);
	if (parts != NULL)
		json_object_set_new(cap, "slurm",
		                    json_pack("{s:o, s:s}", "partitions", parts,
		                              "default_launcher",
		                              a->conf.default_launcher
		                                  ? a->conf.default_launcher
		                                  : "sandbox"));
	return cap;
}

char *slurm_poll_fingerprint(const json_t *cap)
{
	json_t *j = json_deep_copy(cap);
	char *text;

	json_object_del(j, "disk"); /* free disk moves all the time */
	text = json_dump_canon(j);
	json_decref(j);
	return text;
}
