/* transport-https.c: the workspace protocol over HTTP(S) with libcurl.
 * The SSH transport reuses all of it through transport_http_open(). */
#include "transport/transport.h"

#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/proto-error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TP_MAX_REPLY (8 << 20)

struct transport {
	struct http_client *http;
	char *auth; /* "Authorization: Bearer ..." */
	void *priv;
	void (*priv_free)(void *);
};

struct tp_ctx {
	tp_done_fn done;
	void *arg;
};

static void tp_http_done(void *arg, const struct http_result *res)
{
	struct tp_ctx *ctx = arg;
	struct tp_reply rep = {0};

	rep.status = res->status;
	rep.retry_after_ms = res->retry_after_ms;
	if (res->code < 0) {
		rep.code = res->code;
		rep.err = res->err;
	} else {
		if (res->body_len > 0 && json_parse(res->body, res->body_len,
		                                    32, &rep.json, NULL) < 0)
			rep.json = NULL;
		rep.code = proto_error_set(rep.status, rep.json, &rep.err);
		if (rep.code == 0 && rep.json == NULL && res->body_len > 0 &&
		    res->body[0] == '{')
			rep.code =
			    err_set(&rep.err, TERR_PROTO,
			            "HTTP %ld: reply is not JSON", res->status);
	}
	ctx->done(ctx->arg, &rep);
	json_decref(rep.json);
	free(ctx);
}

struct tp_args {
	const char *method, *path;
	json_t *json;
	const char *content_type;
	const char *extra_header;
	int upload_fd, download_fd;
	int64_t up_off, up_len, timeout_ms, connect_timeout_ms;
};

static int tp_call(struct transport *t, const struct tp_args *a,
                   tp_done_fn done, void *arg, struct tp_call **out,
                   struct err *e)
{
	struct tp_ctx *ctx = xcalloc(1, sizeof(*ctx));
	const char *hdrs[6];
	size_t n = 0;
	char *body = NULL;
	struct http_request rq = {0};
	struct http_req *req = NULL;
	int r;

	hdrs[n++] = "Tether-Protocol: 1";
	if (t->auth != NULL)
		hdrs[n++] = t->auth;
	if (a->content_type != NULL)
		hdrs[n++] = a->content_type;
	if (a->extra_header != NULL)
		hdrs[n++] = a->extra_header;
	hdrs[n] = NULL;
	ctx->done = done;
	ctx->arg = arg;
	rq.method = a->method;
	rq.path = a->path;
	rq.headers = hdrs;
	rq.upload_fd = a->upload_fd;
	rq.upload_off = a->up_off;
	rq.upload_len = a->up_len;
	rq.download_fd = a->download_fd;
	rq.max_reply = TP_MAX_REPLY;
	rq.timeout_ms = a->timeout_ms;
	rq.connect_timeout_ms = a->connect_timeout_ms;
	rq.done = tp_http_done;
	rq.arg = ctx;
	if (a->json != NULL) {
		body = json_dumps(a->json, JSON_COMPACT);
		rq.body = body;
		rq.body_len = strlen(body);
	} else if (a->upload_fd < 0 && strcmp(a->method, "GET") != 0) {
		rq.body = "";
		rq.body_len = 0;
	}
	r = http_start(t->http, &rq, &req, e);
	if (body != NULL)
		freezero_str(body);
	if (r < 0) {
		free(ctx);
		return r;
	}
	if (out != NULL)
		*out = (struct tp_call *)req;
	return 0;
}

#define TP_JSON_TYPE "Content-Type: application/json"
#define TP_OCTET     "Content-Type: application/octet-stream"

static struct tp_args tp_args_json(const char *method, const char *path,
                                   json_t *json)
{
	struct tp_args a = {.method = method,
	                    .path = path,
	                    .json = json,
	                    .content_type = TP_JSON_TYPE,
	                    .upload_fd = -1,
	                    .download_fd = -1,
	                    .timeout_ms = 60000};
	return a;
}

static int https_register(struct transport *t, json_t *body, tp_done_fn done,
                          void *arg, struct tp_call **out, struct err *e)
{
	struct tp_args a =
	    tp_args_json("POST", "/api/v1/agents/register", body);
	return tp_call(t, &a, done, arg, out, e);
}

static int https_lease(struct transport *t, json_t *body, int64_t wait_s,
                       tp_done_fn done, void *arg, struct tp_call **out,
                       struct err *e)
{
	struct tp_args a = tp_args_json("POST", "/api/v1/agents/lease", body);
	a.timeout_ms = (wait_s + 30) * 1000;
	a.connect_timeout_ms = a.timeout_ms; /* one timer per poll */
	return tp_call(t, &a, done, arg, out, e);
}

static int https_log_append(struct transport *t, const char *job,
                            int64_t attempt, int fd, int64_t offset,
                            int64_t len, tp_done_fn done, void *arg,
                            struct tp_call **out, struct err *e)
{
	char *path = xasprintf("/api/v1/attempts/%s/%lld/log?offset=%lld", job,
	                       (long long)attempt, (long long)offset);
	struct tp_args a = {.method = "POST",
	                    .path = path,
	                    .content_type = TP_OCTET,
	                    .upload_fd = fd,
	                    .download_fd = -1,
	                    .up_off = offset,
	                    .up_len = len,
	                    .timeout_ms = 120000};
	int r = tp_call(t, &a, done, arg, out, e);
	free(path);
	return r;
}

/* POST body (NULL: none) as JSON to /api/v1/attempts/<job>/<attempt>/<verb>. */
static int attempt_post(struct transport *t, const char *job, int64_t attempt,
                        const char *verb, json_t *body, tp_done_fn done,
                        void *arg, struct tp_call **out, struct err *e)
{
	char *path = xasprintf("/api/v1/attempts/%s/%lld/%s", job,
	                       (long long)attempt, verb);
	struct tp_args a = tp_args_json("POST", path, body);
	int r = tp_call(t, &a, done, arg, out, e);

	free(path);
	return r;
}

static int https_events(struct transport *t, const char *job, int64_t attempt,
                        json_t *body, tp_done_fn done, void *arg,
                        struct tp_call **out, struct err *e)
{
	return attempt_post(t, job, attempt, "events", body, done, arg, out, e);
}

/* Percent-encode a relative path, keeping '/' separators. */
static char *tp_escape_path(const char *p)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(p);
	char *out = xcalloc(3 * n + 1, 1), *o = out;

	for (; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~/", ch)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	return out;
}

/* PUT the file fd (size bytes, its sha256 in Tether-Sha256) at url. */
static int put_file(struct transport *t, const char *url, int fd, int64_t size,
                    const char *sha256, tp_done_fn done, void *arg,
                    struct tp_call **out, struct err *e)
{
	char *hdr = xasprintf("Tether-Sha256: %s", sha256);
	struct tp_args a = {.method = "PUT",
	                    .path = url,
	                    .content_type = TP_OCTET,
	                    .extra_header = hdr,
	                    .upload_fd = fd,
	                    .download_fd = -1,
	                    .up_len = size};
	int r = tp_call(t, &a, done, arg, out, e);

	free(hdr);
	return r;
}

static int https_output_put(struct transport *t, const char *job,
                            int64_t attempt, const char *path, int fd,
                            int64_t size, const char *sha256, tp_done_fn done,
                            void *arg, struct tp_call **out, struct err *e)
{
	char *esc = tp_escape_path(path);
	char *url = xasprintf("/api/v1/attempts/%s/%lld/outputs/%s", job,
	                      (long long)attempt, esc);
	int r = put_file(t, url, fd, size, sha256, done, arg, out, e);

	free(esc);
	free(url);
	return r;
}

static int https_checkpoint_put(struct transport *t, const char *job,
                                int64_t attempt, int fd, int64_t size,
                                const char *sha256, tp_done_fn done, void *arg,
                                struct tp_call **out, struct err *e)
{
	char *url = xasprintf("/api/v1/attempts/%s/%lld/checkpoint", job,
	                      (long long)attempt);
	int r = put_file(t, url, fd, size, sha256, done, arg, out, e);

	free(url);
	return r;
}

static int https_snapshot_get(struct transport *t, const char *id, int fd,
                              tp_done_fn done, void *arg, struct tp_call **out,
                              struct err *e)
{
	char *path = xasprintf("/api/v1/snapshots/%s", id);
	struct tp_args a = {.method = "GET",
	                    .path = path,
	                    .upload_fd = -1,
	                    .download_fd = fd,
	                    .timeout_ms = 0};
	int r = tp_call(t, &a, done, arg, out, e);
	free(path);
	return r;
}

static int https_rotate(struct transport *t, tp_done_fn done, void *arg,
                        struct tp_call **out, struct err *e)
{
	struct tp_args a = tp_args_json("POST", "/api/v1/agents/rotate", NULL);
	return tp_call(t, &a, done, arg, out, e);
}

static int https_handback(struct transport *t, const char *job, int64_t attempt,
                          tp_done_fn done, void *arg, struct tp_call **out,
                          struct err *e)
{
	return attempt_post(t, job, attempt, "handback", NULL, done, arg, out,
	                    e);
}

static void https_cancel(struct transport *t, struct tp_call *call)
{
	struct http_req *req = (struct http_req *)call;

	/* The tp_ctx is owned by the request's callback argument; the
	 * request is dropped without calling back, so free it here. */
	http_cancel_free_arg(t->http, req);
}

static void https_set_token(struct transport *t, const char *token)
{
	if (t->auth != NULL)
		freezero_str(t->auth);
	t->auth = token ? xasprintf("Authorization: Bearer %s", token) : NULL;
}

static void https_on_fd(struct transport *t, int fd, int what)
{
	http_on_fd(t->http, fd, what);
}

static void https_on_timer(struct transport *t)
{
	http_on_timer(t->http);
}

int transport_http_open(const struct transport_config *c,
                        const struct http_loop_hooks *h, const char *base_url,
                        const struct http_socket_provider *provider,
                        struct transport **out, struct err *e)
{
	struct transport *t = xcalloc(1, sizeof(*t));
	struct http_opts o = {.base_url = base_url,
	                      .ca_file = c->ca_file,
	                      .proxy = c->proxy,
	                      .no_proxy = c->no_proxy,
	                      .connect_timeout_ms = c->connect_timeout_ms,
	                      .user_agent = c->user_agent};
	int r;

	if (provider != NULL)
		o.provider = *provider;
	if ((r = http_client_new(&o, h, &t->http, e)) < 0) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

static int https_open(const struct transport_config *c,
                      const struct http_loop_hooks *h, struct transport **out,
                      struct err *e)
{
	char *base = xstrdup(c->url);
	size_t n = strlen(base);
	int r;

	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';
	r = transport_http_open(c, h, base, NULL, out, e);
	free(base);
	return r;
}

static void https_close(struct transport *t)
{
	if (t == NULL)
		return;
	http_client_free(t->http);
	if (t->priv_free != NULL)
		t->priv_free(t->priv);
	if (t->auth != NULL)
		freezero_str(t->auth);
	free(t);
}

void transport_set_private(struct transport *t, void *priv,
                           void (*free_fn)(void *))
{
	t->priv = priv;
	t->priv_free = free_fn;
}

void *transport_get_private(struct transport *t)
{
	return t->priv;
}

const struct transport_ops transport_https = {
    .name = "https",
    .open = https_open,
    .close = https_close,
    .set_token = https_set_token,
    .register_agent = https_register,
    .lease = https_lease,
    .log_append = https_log_append,
    .events = https_events,
    .output_put = https_output_put,
    .checkpoint_put = https_checkpoint_put,
    .snapshot_get = https_snapshot_get,
    .rotate = https_rotate,
    .handback = https_handback,
    .cancel = https_cancel,
    .on_fd = https_on_fd,
    .on_timer = https_on_timer,
};

const struct transport_ops *transport_for_url(const char *url, struct err *e)
{
	if (strncasecmp(url, "https://", 8) == 0 ||
	    strncasecmp(url, "http://", 7) == 0)
		return &transport_https;
	if (strncasecmp(url, "ssh://", 6) == 0)
		return &transport_ssh; /* transport-ssh.c */
	err_set(e, TERR_INVAL,
	        "workspace URL '%s': expected https://, http://127.0.0.1 "
	        "or ssh://",
	        url);
	return NULL;
}
