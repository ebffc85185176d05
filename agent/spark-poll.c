/* spark-poll.c: the Spark cluster for the heartbeat (issue 27).
 * On a node whose spark_master is a standalone master (spark://), a
 * background poller (bgpoll.c) reads the master's JSON status (GET
 * <spark_master_ui>/json/, up to 5 s) at heartbeat pace and keeps the
 * latest summary for the lease and registration bodies (capacity.spark,
 * docs/protocol.md); the event loop never waits for the master.
 * The same summary is what the runner checks a job against
 * (runner/spark/spark-master.c spark_check_fits).
 * With spark_master yarn the same summary comes from `yarn node -list
 * -states RUNNING -showDetails` (common/yarn.h): workers are the RUNNING
 * node managers, cores their vCores, memory their memory.  Each call starts
 * a JVM (about 1 s of CPU), so it runs every YARN_POLL_MS, or at the
 * heartbeat's pace when that is slower. */
#include "agent/agent.h"
#include "agent/bgpoll.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/yarn.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define SPARK_STATUS_MAX (8 << 20)

#define YARN_POLL_MS 30000

struct spark_poll {
	char *master, *url;
	char *yarn, *yarn_conf; /* master yarn: the command, its conf dir */
};

static void spark_poll_free(void *ctx)
{
	struct spark_poll *p = ctx;

	free(p->master);
	free(p->url);
	free(p->yarn);
	free(p->yarn_conf);
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

json_t *spark_yarn_summary(const struct yarn_nodes *n)
{
	int64_t idle = n->vcores - n->vcores_used;

	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "master",
	                 "yarn", "workers", (json_int_t)n->nodes, "cores",
	                 (json_int_t)n->vcores, "idle_cores",
	                 (json_int_t)(idle > 0 ? idle : 0), "memory",
	                 (json_int_t)(n->memory_mb << 20), "worker_cores",
	                 (json_int_t)n->max_node_vcores, "worker_memory",
	                 (json_int_t)(n->max_node_memory_mb << 20));
}

static int spark_poll_fetch(void *ctx, json_t **out, struct err *e)
{
	struct spark_poll *p = ctx;
	struct yarn_nodes n;
	json_t *st = NULL;
	int r;

	if (p->yarn != NULL) {
		if ((r = yarn_nodes_get(p->yarn, p->yarn_conf, &n, e)) == 0)
			*out = spark_yarn_summary(&n);
		return r;
	}
	if ((r = spark_status_get(p->url, &st, e)) == 0)
		*out = spark_status_summary(st, p->master);
	json_decref(st);
	return r;
}

static const struct bgpoll_ops spark_poll_ops = {
    .what = "spark capacity",
    .recovered = "the master answers again",
    .fetch = spark_poll_fetch,
    .free_ctx = spark_poll_free,
};

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
	int64_t period =
	    a->conf.heartbeat_ms > 1000 ? a->conf.heartbeat_ms : 1000;
	struct spark_poll *p;

	if (a->conf.spark_master != NULL &&
	    strcmp(a->conf.spark_master, "yarn") == 0) {
		const char *conf = agent_conf_yarn_conf(&a->conf);

		p = xcalloc(1, sizeof(*p));
		p->master = xstrdup("yarn");
		p->yarn = xstrdup(a->conf.yarn_command ? a->conf.yarn_command
		                                       : "yarn");
		p->yarn_conf = conf ? xstrdup(conf) : NULL;
		period = period > YARN_POLL_MS ? period : YARN_POLL_MS;
		log_info("spark capacity: %s node -list every %lld ms", p->yarn,
		         (long long)period);
		if ((a->spark = bgpoll_start(&spark_poll_ops, p, period, e)) ==
		    NULL)
			return -1;
		return 0;
	}
	if (ui == NULL)
		return 0;
	p = xcalloc(1, sizeof(*p));
	p->master = xstrdup(a->conf.spark_master);
	p->url = xasprintf("%s/json/", ui);
	free(ui);
	log_info("spark capacity: %s every %lld ms", p->url, (long long)period);
	if ((a->spark = bgpoll_start(&spark_poll_ops, p, period, e)) == NULL)
		return -1;
	return 0;
}

void spark_poll_stop(struct agent *a)
{
	bgpoll_stop(a->spark);
	a->spark = NULL;
}

void spark_poll_add(struct agent *a, json_t *cap)
{
	json_t *sum = bgpoll_latest(a->spark);

	if (sum != NULL)
		json_object_set_new(cap, "spark", sum);
}
