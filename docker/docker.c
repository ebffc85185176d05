/* docker.c: the Docker Engine API client core: version negotiation and
 * requests over the engine's unix socket with libcurl. */
#include "docker/docker.h"

#include "common/attempt.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_MAX (64 << 20)

struct docker {
	char *socket;
	char version[16];
};

struct xfer {
	CURL *c;
	const struct docker_req *q;
	struct buf body; /* collected reply (or error body) */
	int cb_rc;       /* on_data's failure, if any */
	CURLcode cc;     /* libcurl's result */
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Parse "1.41" into major and minor; false when malformed. */
static bool version_parse(const char *s, long *maj, long *min)
{
	char *end;

	if (s == NULL)
		return false;
	*maj = strtol(s, &end, 10);
	if (end == s || *end != '.')
		return false;
	s = end + 1;
	*min = strtol(s, &end, 10);
	return end != s && *end == '\0';
}

int docker_version_pick(const char *engine, const char *ours,
                        const char *min_ok, char out[16], struct err *e)
{
	long ea, eb, oa, ob, ma, mb;

	if (!version_parse(engine, &ea, &eb))
		return err_set(e, TERR_PROTO,
		               "engine API version '%s' is not "
		               "MAJOR.MINOR",
		               engine ? engine : "(none)");
	if (!version_parse(ours, &oa, &ob) || !version_parse(min_ok, &ma, &mb))
		return err_set(e, TERR_INVAL, "bad client API version");
	if (ea < ma || (ea == ma && eb < mb))
		return err_set(e, TERR_UNSUPP,
		               "docker engine API %s is older than %s, the "
		               "oldest Tether supports: upgrade docker",
		               engine, min_ok);
	if (ea > oa || (ea == oa && eb > ob))
		ea = oa, eb = ob;
	snprintf(out, 16, "%ld.%ld", ea, eb);
	return 0;
}

const char *docker_socket(const struct docker *d)
{
	return d->socket;
}

static size_t on_write(char *ptr, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	long status = 0;

	curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
	if (x->q->on_data != NULL && status >= 200 && status < 300) {
		if ((x->cb_rc = x->q->on_data(x->q->arg, ptr, size * n)) < 0)
			return 0;
		return size * n;
	}
	if (buf_append(&x->body, ptr, size * n, NULL) < 0)
		return 0;
	return size * n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
                       curl_off_t d)
{
	const struct docker_req *q = arg;

	if (q->on_tick != NULL)
		q->on_tick(q->arg);
	return q->cancel != NULL && *q->cancel ? 1 : 0;
}

/* Map an error status and the engine's {"message"} to a TERR_* error. */
static int status_error(long status, struct buf *body, const char *path,
                        struct err *e)
{
	json_t *j =
	    json_loadb(body->data ? body->data : "", body->len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));
	int code = status == 404                    ? TERR_NOTFOUND
	           : status == 409                  ? TERR_CONFLICT
	           : status == 401 || status == 403 ? TERR_AUTH
	                                            : TERR_FAIL;

	if (msg == NULL)
		msg = body->data && body->len ? body->data : "(no message)";
	err_set(e, code, "docker %s: HTTP %ld: %.*s", path, status,
	        (int)strcspn(msg, "\n"), msg);
	json_decref(j);
	return code;
}

static struct curl_slist *make_headers(const struct docker_req *q,
                                       const char *json)
{
	struct curl_slist *h = NULL;
	char *a;

	h = curl_slist_append(h, "Expect:");
	if (json != NULL)
		h = curl_slist_append(h, "Content-Type: application/json");
	else if (q->upload != NULL) {
		a = xasprintf("Content-Type: %s", q->content_type
		                                      ? q->content_type
		                                      : "application/x-tar");
		h = curl_slist_append(h, a);
		free(a);
	}
	if (q->registry_auth != NULL) {
		a = xasprintf("X-Registry-Auth: %s", q->registry_auth);
		h = curl_slist_append(h, a);
		freezero_str(a);
	}
	return h;
}

static void setup_body(CURL *c, const struct docker_req *q, const char *json)
{
	if (json != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
	} else if (q->upload != NULL) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READDATA, q->upload);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
		                 (curl_off_t)q->upload_size);
	} else if (strcmp(q->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
}

static int perform(struct docker *d, struct xfer *x, long *status,
                   struct err *e)
{
	const struct docker_req *q = x->q;
	char *json = q->body ? json_dumps(q->body, JSON_COMPACT) : NULL;
	char *url = d->version[0]
	                ? xasprintf("http://docker/v%s%s", d->version, q->path)
	                : xasprintf("http://docker%s", q->path);
	struct curl_slist *h = make_headers(q, json);
	CURLcode cc;
	int r = 0;

	curl_easy_setopt(x->c, CURLOPT_UNIX_SOCKET_PATH, d->socket);
	curl_easy_setopt(x->c, CURLOPT_URL, url);
	curl_easy_setopt(x->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(x->c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(x->c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(x->c, CURLOPT_XFERINFODATA, (void *)q);
	curl_easy_setopt(x->c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x->c, CURLOPT_TIMEOUT_MS, q->timeout_ms);
	curl_easy_setopt(x->c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(x->c, CURLOPT_ERRORBUFFER, x->errbuf);
	setup_body(x->c, q, json);
	cc = x->cc = curl_easy_perform(x->c);
	curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, status);
	if (x->cb_rc < 0)
		r = err_wrap(e, "docker %s", q->path);
	else if (cc == CURLE_ABORTED_BY_CALLBACK)
		r = err_set(e, TERR_TIMEOUT, "docker %s: cancelled", q->path);
	else if (cc != CURLE_OK)
		r = err_set(e, TERR_NET, "docker %s (socket %s): %s", q->path,
		            d->socket, curl_easy_strerror(cc));
	curl_slist_free_all(h);
	free(url);
	free(json);
	return r;
}

int docker_request(struct docker *d, const struct docker_req *q, long *status,
                   json_t **reply, struct err *e)
{
	struct xfer x = {.q = q};
	long st = 0;
	int r;

	if (reply != NULL)
		*reply = NULL;
	buf_init(&x.body, REPLY_MAX);
	if ((x.c = curl_easy_init()) == NULL) {
		r = err_set(e, TERR_NOMEM, "curl_easy_init failed");
		goto out;
	}
	if ((r = perform(d, &x, &st, e)) < 0)
		goto out;
	if (st >= 400) {
		r = status_error(st, &x.body, q->path, e);
		goto out;
	}
	if (reply != NULL && q->on_data == NULL && x.body.len > 0)
		*reply = json_loadb(x.body.data, x.body.len, 0, NULL);
out:
	if (status != NULL)
		*status = st;
	curl_easy_cleanup(x.c);
	buf_free(&x.body);
	return r;
}

int docker_call(struct docker *d, const char *method, const char *path,
                json_t *body, json_t **reply, struct err *e)
{
	struct docker_req q = {
	    .method = method,
	    .path = path,
	    .body = body,
	    .timeout_ms = strcmp(path, "/version") == 0 ? 15000 : 120000};

	return docker_request(d, &q, NULL, reply, e);
}

/* Copy a string member of the /version reply into out. */
static void version_field(json_t *v, const char *key, char *out, size_t n)
{
	const char *s = json_string_value(json_object_get(v, key));

	snprintf(out, n, "%s", s ? s : "");
}

int docker_version_probe(const char *socket_path, long timeout_ms,
                         struct docker_version *out, struct err *e)
{
	/* Unversioned GET /version answers whatever the engine speaks. */
	const char *sock =
	    socket_path ? socket_path : ATTEMPT_DEF_DOCKER_SOCKET;
	struct docker d = {.socket = (char *)sock};
	struct docker_req q = {
	    .method = "GET", .path = "/version", .timeout_ms = timeout_ms};
	struct xfer x = {.q = &q};
	json_t *v = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	pthread_once(&curl_once, curl_init_once);
	buf_init(&x.body, REPLY_MAX);
	if ((x.c = curl_easy_init()) == NULL) {
		r = err_set(e, TERR_NOMEM, "curl_easy_init failed");
		goto out;
	}
	if ((r = perform(&d, &x, &out->status, e)) < 0) {
		snprintf(out->error, sizeof(out->error), "%s",
		         x.errbuf[0] ? x.errbuf : curl_easy_strerror(x.cc));
		goto out;
	}
	if (out->status >= 400) {
		r = status_error(out->status, &x.body, q.path, e);
		goto out;
	}
	v = json_loadb(x.body.data ? x.body.data : "", x.body.len, 0, NULL);
	version_field(v, "ApiVersion", out->api, sizeof(out->api));
	version_field(v, "Version", out->engine, sizeof(out->engine));
out:
	json_decref(v);
	curl_easy_cleanup(x.c);
	buf_free(&x.body);
	return r;
}

int docker_open(const char *socket_path, struct docker **out, struct err *e)
{
	struct docker *d = xcalloc(1, sizeof(*d));
	struct docker_version v;
	int r;

	d->socket =
	    xstrdup(socket_path ? socket_path : ATTEMPT_DEF_DOCKER_SOCKET);
	if ((r = docker_version_probe(d->socket, 15000, &v, e)) < 0) {
		err_wrap(e, "docker engine at %s not reachable", d->socket);
		goto out;
	}
	r = docker_version_pick(v.api[0] ? v.api : NULL, DOCKER_API_OURS,
	                        DOCKER_API_MIN, d->version, e);
	if (r < 0)
		goto out;
	*out = d;
	d = NULL;
out:
	docker_close(d);
	return r;
}

void docker_close(struct docker *d)
{
	if (d == NULL)
		return;
	free(d->socket);
	free(d);
}
