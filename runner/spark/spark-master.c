/* spark-master.c: what the spark launcher asks a standalone master, over
 * its web UI (docs/spark.md, "The master"): GET /json/ for the workers
 * and the applications, POST /app/kill/ to kill an application (the
 * master then lists it KILLED, as its UI's kill link does).  Answers are
 * capped; every request has a deadline. */
#include "runner/spark/spark.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/jobspec.h"
#include "common/util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MASTER_TIMEOUT_MS 10000
#define MASTER_MAX_BYTES  (8 << 20)

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
	struct err ignore = {0};

	if (buf_append(arg, data, size * n, &ignore) < 0)
		return 0; /* over the cap: libcurl stops with an error */
	return size * n;
}

/* One request; the body into out, an HTTP status >= 400 is an error. */
static int master_http(const char *url, const char *post, struct buf *out,
                       struct err *e);

int spark_http_get(const char *url, struct buf *out, struct err *e)
{
	return master_http(url, NULL, out, e);
}

static int master_http(const char *url, const char *post, struct buf *out,
                       struct err *e)
{
	CURL *c = curl_easy_init();
	char why[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;

	if (c == NULL)
		return err_set(e, TERR_NOMEM, "curl_easy_init");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)MASTER_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (post != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK)
		return err_set(e, TERR_IO, "%s: %s", url,
		               why[0] ? why : curl_easy_strerror(cc));
	if (status >= 400)
		return err_set(e, TERR_IO, "%s: HTTP %ld", url, status);
	return 0;
}

int spark_master_status(const char *ui, json_t **status, struct err *e)
{
	char *url = xasprintf("%s/json/", ui);
	json_error_t je;
	struct buf b;
	int rc;

	buf_init(&b, MASTER_MAX_BYTES);
	if ((rc = master_http(url, NULL, &b, e)) == 0) {
		*status = json_loadb(b.data ? b.data : "", b.len, 0, &je);
		if (!json_is_object(*status)) {
			json_decref(*status);
			*status = NULL;
			rc = err_set(e, TERR_PROTO,
			             "%s: not the master's JSON status (%s)",
			             url, je.text);
		}
	}
	buf_free(&b);
	free(url);
	return rc;
}

static int64_t num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

void spark_status_cluster(json_t *status, struct spark_cluster *c)
{
	json_t *w;
	size_t i;

	memset(c, 0, sizeof(*c));
	json_array_foreach(json_object_get(status, "workers"), i, w)
	{
		const char *state =
		    json_string_value(json_object_get(w, "state"));
		if (state == NULL || strcmp(state, "ALIVE") != 0)
			continue;
		c->workers++;
		c->cores += num(w, "cores");
		c->cores_free += num(w, "coresfree");
		c->memory_mb += num(w, "memory");
		if (num(w, "cores") > c->max_worker_cores)
			c->max_worker_cores = num(w, "cores");
		if (num(w, "memory") > c->max_worker_memory_mb)
			c->max_worker_memory_mb = num(w, "memory");
	}
}

/* The entry of application id in a status document, or NULL. */
static json_t *status_app(json_t *status, const char *id)
{
	static const char *const lists[] = {"activeapps", "completedapps"};
	json_t *a;
	size_t i;

	for (size_t l = 0; l < 2; l++)
		json_array_foreach(json_object_get(status, lists[l]), i, a)
		{
			const char *aid =
			    json_string_value(json_object_get(a, "id"));
			if (aid != NULL && strcmp(aid, id) == 0)
				return a;
		}
	return NULL;
}

bool spark_status_app(json_t *status, const char *id, char *state, size_t size)
{
	json_t *a = status_app(status, id);
	const char *st;

	if (a == NULL)
		return false;
	st = json_string_value(json_object_get(a, "state"));
	snprintf(state, size, "%s", st ? st : "UNKNOWN");
	return true;
}

bool spark_status_app_name(json_t *status, const char *id, char *name,
                           size_t size)
{
	json_t *a = status_app(status, id);
	const char *n;

	if (a == NULL)
		return false;
	n = json_string_value(json_object_get(a, "name"));
	snprintf(name, size, "%s", n ? n : "");
	return true;
}

int spark_master_kill(const char *ui, const char *id, struct err *e)
{
	char *url = xasprintf("%s/app/kill/", ui);
	char *post = xasprintf("id=%s&terminate=true", id); /* id: [\w-] */
	struct buf b;
	int rc;

	buf_init(&b, MASTER_MAX_BYTES);
	rc = master_http(url, post, &b, e);
	buf_free(&b);
	free(url);
	free(post);
	return rc;
}

int spark_check_fits(const struct jobspec *sp, const struct spark_cluster *c,
                     const char *master, struct err *e)
{
	int64_t cores =
	    sp->spark.executor_cores > 0 ? sp->spark.executor_cores : 1;
	int64_t n = sp->spark.executors > 0 ? sp->spark.executors : 1;
	int64_t mem = spark_size_mb(sp->spark.executor_memory);

	if (c->workers == 0)
		return err_set(e, TERR_UNSUPP, "spark: %s has no live worker",
		               master);
	if (cores > c->max_worker_cores)
		return err_set(e, TERR_UNSUPP,
		               "spark.executor_cores: %lld cores per executor, "
		               "but no worker of %s has more than %lld",
		               (long long)cores, master,
		               (long long)c->max_worker_cores);
	if (n * cores > c->cores)
		return err_set(e, TERR_UNSUPP,
		               "spark.executors x spark.executor_cores: %lld x "
		               "%lld = %lld cores, more than the %lld cores of "
		               "%s",
		               (long long)n, (long long)cores,
		               (long long)(n * cores), (long long)c->cores,
		               master);
	if (mem > c->max_worker_memory_mb)
		return err_set(e, TERR_UNSUPP,
		               "spark.executor_memory: %lld MiB per executor, "
		               "but no worker of %s offers more than %lld MiB",
		               (long long)mem, master,
		               (long long)c->max_worker_memory_mb);
	return 0;
}
