/* spark-poll.c: the Spark cluster for the heartbeat (issue 27).
 * On a node whose spark_master is a standalone master (spark://), a worker
 * thread reads the master's JSON status (GET <spark_master_ui>/json/, up
 * to 5 s) at heartbeat pace and keeps the latest summary; the event loop
 * only copies it under a mutex when it builds a lease or registration
 * body (capacity.spark, docs/protocol.md), and never waits for the master.
 * The same summary is what the runner checks a job against
 * (runner/spark/spark-master.c spark_check_fits). */
#include "agent/agent.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPARK_STATUS_MAX (8 << 20)

struct spark_poll {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool stop, failing;
	int64_t period_ms;
	char *master, *url;
	json_t *summary; /* latest; NULL before the first or on error */
};

static void spark_poll_unref(struct spark_poll *p)
{
	bool last;

	pthread_mutex_lock(&p->mu);
	last = --p->refs == 0;
	pthread_mutex_unlock(&p->mu);
	if (!last)
		return;
	json_decref(p->summary);
	free(p->master);
	free(p->url);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
	struct err ignore = {0};

	return buf_append(arg, data, size * n, &ignore) < 0 ? 0 : size * n;
}

int spark_status_get(const char *url, json_t **out, struct err *e)
{
	CURL *c = curl_easy_init();
	char why[CURL_ERROR_SIZE] = "";
	long status = 0;
	struct buf b;
	CURLcode cc;
	int r = 0;

	if (c == NULL)
		return err_set(e, TERR_NOMEM, "curl_easy_init");
	buf_init(&b, SPARK_STATUS_MAX);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK)
		r = err_set(e, TERR_NET, "%s: %s", url,
		            why[0] ? why : curl_easy_strerror(cc));
	else if (status != 200)
		r = err_set(e, TERR_PROTO, "%s: HTTP %ld", url, status);
	else if (!json_is_object(*out = json_loadb(b.data ? b.data : "", b.len,
	                                           0, NULL))) {
		json_decref(*out);
		*out = NULL;
		r = err_set(e, TERR_PROTO, "%s: not the master's JSON status",
		            url);
	}
	buf_free(&b);
	return r;
}

static int64_t num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0
	           ? json_integer_value(v)
	           : 0;
}

json_t *spark_status_summary(json_t *st, const char *master)
{
	int64_t workers = 0, cores = 0, free_cores = 0, mem = 0, wc = 0, wm = 0;
	json_t *w;
	size_t i;

	json_array_foreach(json_object_get(st, "workers"), i, w)
	{
		const char *state =
		    json_string_value(json_object_get(w, "state"));
		if (state == NULL || strcmp(state, "ALIVE") != 0)
			continue;
		workers++;
		cores += num(w, "cores");
		free_cores += num(w, "coresfree");
		mem += num(w, "memory");
		wc = num(w, "cores") > wc ? num(w, "cores") : wc;
		wm = num(w, "memory") > wm ? num(w, "memory") : wm;
	}
	/* memory in bytes, like the node's own (the master says MiB) */
	return json_pack(
	    "{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "master", master, "workers",
	    (json_int_t)workers, "cores", (json_int_t)cores, "idle_cores",
	    (json_int_t)free_cores, "memory", (json_int_t)(mem << 20),
	    "worker_cores", (json_int_t)wc, "worker_memory",
	    (json_int_t)(wm << 20));
}

/* Store one answer (p->mu held); log only when it starts or stops
 * failing. */
static void spark_poll_store(struct spark_poll *p, int r, json_t *sum,
                             const struct err *e)
{
	if (r < 0 && !p->failing)
		log_warn("spark capacity: %s", e->msg);
	else if (r == 0 && p->failing)
		log_info("spark capacity: the master answers again");
	p->failing = r < 0;
	json_decref(p->summary);
	p->summary = r < 0 ? NULL : sum;
}

static void spark_poll_sleep(struct spark_poll *p)
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

static void *spark_poll_main(void *arg)
{
	struct spark_poll *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct err e = {0};
		json_t *st = NULL, *sum = NULL;
		int r;

		pthread_mutex_unlock(&p->mu);
		if ((r = spark_status_get(p->url, &st, &e)) == 0)
			sum = spark_status_summary(st, p->master);
		json_decref(st);
		pthread_mutex_lock(&p->mu);
		spark_poll_store(p, r, sum, &e);
		spark_poll_sleep(p);
	}
	pthread_mutex_unlock(&p->mu);
	spark_poll_unref(p);
	return NULL;
}

char *spark_poll_ui(const struct agent_conf *c)
{
	const char *m = c->spark_master, *h;

	if (c->spark_master_ui != NULL && *c->spark_master_ui != '\0')
		return xstrdup(c->spark_master_ui);
	if (m == NULL || strncmp(m, "spark://", 8) != 0)
		return NULL;
	h = m + 8;
	return xasprintf("http://%.*s:8080", (int)strcspn(h, ":,/"), h);
}

int spark_poll_start(struct agent *a, struct err *e)
{
	char *ui = a->conf.spark_master != NULL &&
	                   strncmp(a->conf.spark_master, "spark://", 8) == 0
	               ? spark_poll_ui(&a->conf)
	               : NULL;
	struct spark_poll *p;
	pthread_condattr_t ca;
	pthread_t th;
	int r;

	if (ui == NULL)
		return 0;
	p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->refs = 2;
	p->master = xstrdup(a->conf.spark_master);
	p->url = xasprintf("%s/json/", ui);
	free(ui);
	p->period_ms =
	    a->conf.heartbeat_ms > 1000 ? a->conf.heartbeat_ms : 1000;
	if ((r = pthread_create(&th, NULL, spark_poll_main, p)) != 0) {
		p->refs = 1;
		spark_poll_unref(p);
		errno = r;
		return err_sys(e, TERR_IO, "spark capacity thread");
	}
	pthread_detach(th);
	a->spark = p;
	log_info("spark capacity: %s every %lld ms", p->url,
	         (long long)p->period_ms);
	return 0;
}

/* The thread may be waiting for the master: it frees the state when it
 * is back, the agent does not wait for it. */
void spark_poll_stop(struct agent *a)
{
	struct spark_poll *p = a->spark;

	if (p == NULL)
		return;
	a->spark = NULL;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	spark_poll_unref(p);
}

void spark_poll_add(struct agent *a, json_t *cap)
{
	struct spark_poll *p = a->spark;
	json_t *sum = NULL;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->summary != NULL)
		sum = json_deep_copy(p->summary);
	pthread_mutex_unlock(&p->mu);
	if (sum != NULL)
		json_object_set_new(cap, "spark", sum);
}
