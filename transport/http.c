/* http.c: asynchronous HTTP over the libcurl multi socket API. */
#include "transport/http.h"

#include "common/buf.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <curl/curl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HTTP_DEFAULT_MAX_REPLY (1 << 20)
/* A POST body below this goes in the headers' write (libcurl appends
 * CURLOPT_POSTFIELDS under its MAX_INITIAL_POST_SIZE, 64 KiB). */
#define HTTP_INLINE_BODY (60 * 1024)

struct http_req {
	struct http_client *c;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	size_t body_len, body_pos;
	int up_fd, down_fd;
	int64_t up_off, up_len, up_pos;
	struct buf reply;
	int64_t retry_after_ms;
	int write_code;
	struct err write_err;
	http_done_fn done;
	void *arg;
	struct http_req *next, *prev;
};

struct http_client {
	CURLM *multi;
	char *base_url, *ca_file, *proxy, *no_proxy, *user_agent;
	int64_t connect_timeout_ms;
	struct http_socket_provider provider;
	struct http_loop_hooks hooks;
	struct http_req *reqs;
	int running;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;

static void http_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool http_url_allowed(const char *url)
{
	struct in_addr a4;
	char host[256];
	const char *h, *end;
	size_t n;

	if (strncasecmp(url, "https://", 8) == 0)
		return true;
	if (strncasecmp(url, "http://", 7) != 0)
		return false;
	h = url + 7;
	if (*h == '[') {
		end = strchr(h, ']');
		return end != NULL && end - h == 4 &&
		       strncmp(h, "[::1", 4) == 0;
	}
	n = strcspn(h, ":/?#");
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 &&
	       (ntohl(a4.s_addr) >> 24) == 127;
}

static int http_sock_cb(CURL *easy, curl_socket_t s, int what, void *userp,
                        void *socketp)
{
	struct http_client *c = userp;
	int w = 0;

	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		w |= HTTP_WATCH_IN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		w |= HTTP_WATCH_OUT;
	if (c->hooks.watch(c->hooks.ctx, s, w) < 0)
		log_warn("cannot watch fd %d", s);
	return 0;
}

static int http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;

	c->hooks.timer(c->hooks.ctx, timeout_ms);
	return 0;
}

int http_client_new(const struct http_opts *o, const struct http_loop_hooks *h,
                    struct http_client **out, struct err *e)
{
	struct http_client *c;

	if (o->provider.open == NULL && !http_url_allowed(o->base_url))
		return err_set(e, TERR_INVAL,
		               "workspace URL '%s': use https:// (plain http "
		               "only to loopback)",
		               o->base_url);
	pthread_once(&http_once, http_global_init);
	c = xcalloc(1, sizeof(*c));
	c->multi = curl_multi_init();
	if (c->multi == NULL) {
		free(c);
		return err_set(e, TERR_NOMEM, "curl_multi_init failed");
	}
	c->base_url = xstrdup(o->base_url);
	c->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	c->proxy = o->proxy ? xstrdup(o->proxy) : NULL;
	c->no_proxy = o->no_proxy ? xstrdup(o->no_proxy) : NULL;
	c->user_agent = xstrdup(o->user_agent ? o->user_agent : "tether");
	c->connect_timeout_ms =
	    o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	c->provider = o->provider;
	c->hooks = *h;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, http_sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	*out = c;
	return 0;
}

static void http_req_free(struct http_req *r)
{
	if (r == NULL)
		return;
	if (r->easy != NULL) {
		curl_multi_remove_handle(r->c->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->hdrs);
	if (r->body != NULL)
		freezero(r->body, r->body_len);
	if (r->up_fd >= 0)
		close(r->up_fd);
	if (r->down_fd >= 0)
		close(r->down_fd);
	buf_free(&r->reply);
	free(r);
}

static void http_unlink(struct http_req *r)
{
	struct http_client *c = r->c;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		c->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	c->running--;
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	while (c->reqs != NULL) {
		struct http_req *r = c->reqs;
		http_unlink(r);
		http_req_free(r);
	}
	curl_multi_cleanup(c->multi);
	free(c->base_url);
	free(c->ca_file);
	free(c->proxy);
	free(c->no_proxy);
	free(c->user_agent);
	free(c);
}

static size_t http_write_cb(char *ptr, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t len = size * n;

	if (r->down_fd >= 0) {
		long status = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			r->write_code =
			    fd_write_all(r->down_fd, ptr, len, &r->write_err);
			return r->write_code < 0 ? 0 : len;
		}
	}
	r->write_code = buf_append(&r->reply, ptr, len, &r->write_err);
	return r->write_code < 0 ? 0 : len;
}

static size_t http_read_cb(char *ptr, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t want = size * n;
	ssize_t got;

	if (r->up_fd < 0) {
		size_t left = r->body_len - r->body_pos;
		if (want > left)
			want = left;
		memcpy(ptr, r->body + r->body_pos, want);
		r->body_pos += want;
		return want;
	}
	if ((int64_t)want > r->up_len - r->up_pos)
		want = (size_t)(r->up_len - r->up_pos);
	if (want == 0)
		return 0;
	do
		got = pread(r->up_fd, ptr, want, r->up_off + r->up_pos);
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	r->up_pos += got;
	return (size_t)got;
}

static size_t http_header_cb(char *line, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t len = size * n;
	char tmp[64];
	int64_t v;

	if (len > 12 && len < sizeof(tmp) &&
	    strncasecmp(line, "Retry-After:", 12) == 0) {
		memcpy(tmp, line + 12, len - 12);
		tmp[len - 12] = '\0';
		char *s = tmp, *end = tmp + strlen(tmp);
		while (*s == ' ')
			s++;
		while (end > s &&
		       (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
			*--end = '\0';
		if (parse_i64(s, 0, 86400, &v, NULL) == 0)
			r->retry_after_ms = v * 1000;
	}
	return len;
}

static curl_socket_t http_open_cb(void *arg, curlsocktype purpose,
                                  struct curl_sockaddr *addr)
{
	struct http_client *c = arg;
	struct err e = {0};
	int fd = -1;

	if (c->provider.open(c->provider.ctx, &fd, &e) < 0) {
		log_warn("socket provider: %s", e.msg);
		return CURL_SOCKET_BAD;
	}
	return fd;
}

static int http_sockopt_cb(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	return CURL_SOCKOPT_ALREADY_CONNECTED;
}

static int http_setup(struct http_client *c, struct http_req *r,
                      const struct http_request *rq, struct err *e)
{
	CURL *h = r->easy;
	char *url = xasprintf("%s%s", c->base_url, rq->path);
	bool has_body = rq->upload_fd >= 0 || rq->body != NULL;
	curl_off_t blen =
	    rq->upload_fd >= 0 ? rq->upload_len : (curl_off_t)rq->body_len;

	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PRIVATE, r);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->proxy != NULL)
		curl_easy_setopt(h, CURLOPT_PROXY, c->proxy);
	if (c->no_proxy != NULL)
		curl_easy_setopt(h, CURLOPT_NOPROXY, c->no_proxy);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(rq->connect_timeout_ms > 0
	                            ? rq->connect_timeout_ms
	                            : c->connect_timeout_ms));
	if (rq->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)rq->timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	if (c->provider.open != NULL) {
		curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, http_open_cb);
		curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
		curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, http_sockopt_cb);
		curl_easy_setopt(h, CURLOPT_PROXY, "");
	}
	r->hdrs = curl_slist_append(r->hdrs, "Expect:");
	for (size_t i = 0; rq->headers != NULL && rq->headers[i]; i++)
		r->hdrs = curl_slist_append(r->hdrs, rq->headers[i]);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdrs);
	if (strcmp(rq->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, blen);
	} else if (strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, blen);
	} else if (strcmp(rq->method, "GET") != 0) {
		return err_set(e, TERR_INVAL, "method %s", rq->method);
	}
	/* A POST's body in memory goes with its headers, in one write: sent
	 * apart, the body waits on Nagle and the server's delayed ACK
	 * (40 ms here) wherever a hop in between has no TCP_NODELAY, as
	 * sshd's forwarded connection to the workspace (an ssh:// agent). */
	if (r->body != NULL && strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
	} else if (has_body) {
		curl_easy_setopt(h, CURLOPT_READFUNCTION, http_read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
	}
	return 0;
}

/* A small upload's bytes, read now to go inline (http_setup); NULL when
 * the file is shorter or unreadable: the read callback then reports it. */
static char *read_inline(int fd, int64_t off, int64_t len)
{
	char *p = xcalloc(1, len > 0 ? (size_t)len : 1);

	if (fd_pread_all(fd, p, (size_t)len, off) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

int http_start(struct http_client *c, const struct http_request *rq,
               struct http_req **out, struct err *e)
{
	struct http_req *r = xcalloc(1, sizeof(*r));
	int ret;

	r->c = c;
	r->up_fd = r->down_fd = -1;
	r->retry_after_ms = -1;
	r->done = rq->done;
	r->arg = rq->arg;
	buf_init(&r->reply,
	         rq->max_reply ? rq->max_reply : HTTP_DEFAULT_MAX_REPLY);
	if (rq->upload_fd >= 0 && strcmp(rq->method, "POST") == 0 &&
	    rq->upload_len < HTTP_INLINE_BODY &&
	    (r->body = read_inline(rq->upload_fd, rq->upload_off,
	                           rq->upload_len)) != NULL) {
		r->body_len = (size_t)rq->upload_len;
	} else if (rq->upload_fd >= 0) {
		r->up_fd = dup(rq->upload_fd);
		r->up_off = rq->upload_off;
		r->up_len = rq->upload_len;
	} else if (rq->body != NULL) {
		r->body = malloc(rq->body_len ? rq->body_len : 1);
		if (r->body == NULL)
			abort();
		memcpy(r->body, rq->body, rq->body_len);
		r->body_len = rq->body_len;
	}
	if (rq->download_fd >= 0)
		r->down_fd = dup(rq->download_fd);
	r->easy = curl_easy_init();
	if (r->easy == NULL) {
		ret = err_set(e, TERR_NOMEM, "curl_easy_init failed");
		goto fail;
	}
	if ((ret = http_setup(c, r, rq, e)) < 0)
		goto fail;
	r->next = c->reqs;
	if (c->reqs != NULL)
		c->reqs->prev = r;
	c->reqs = r;
	c->running++;
	if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		http_unlink(r);
		ret = err_set(e, TERR_FAIL, "curl_multi_add_handle failed");
		goto fail;
	}
	if (out != NULL)
		*out = r;
	return 0;
fail:
	http_req_free(r);
	return ret;
}

void http_cancel(struct http_client *c, struct http_req *r)
{
	if (r == NULL)
		return;
	http_unlink(r);
	http_req_free(r);
}

void http_cancel_free_arg(struct http_client *c, struct http_req *r)
{
	if (r == NULL)
		return;
	free(r->arg);
	http_cancel(c, r);
}

static void http_finish(struct http_client *c, CURL *easy, CURLcode cc)
{
	struct http_req *r = NULL;
	struct http_result res = {0};

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status);
	res.retry_after_ms = r->retry_after_ms;
	if (r->write_code < 0) {
		res.code = r->write_code;
		res.err = r->write_err;
	} else if (cc != CURLE_OK) {
		res.code =
		    cc == CURLE_OPERATION_TIMEDOUT ? TERR_TIMEOUT : TERR_NET;
		err_set(&res.err, res.code, "%s", curl_easy_strerror(cc));
	}
	res.body = r->reply.data ? r->reply.data : "";
	res.body_len = r->reply.len;
	http_unlink(r);
	if (r->done != NULL)
		r->done(r->arg, &res);
	http_req_free(r);
}

static void http_check_done(struct http_client *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			http_finish(c, m->easy_handle, m->data.result);
}

int http_watch_from_epoll(uint32_t events)
{
	int what = 0;

	if (events & (EPOLLIN | EPOLLHUP))
		what |= HTTP_WATCH_IN;
	if (events & EPOLLOUT)
		what |= HTTP_WATCH_OUT;
	if (events & EPOLLERR)
		what |= HTTP_WATCH_ERR;
	return what;
}

void http_on_fd(struct http_client *c, int fd, int what)
{
	int ev = 0, running;

	if (what & HTTP_WATCH_IN)
		ev |= CURL_CSELECT_IN;
	if (what & HTTP_WATCH_OUT)
		ev |= CURL_CSELECT_OUT;
	if (what & HTTP_WATCH_ERR)
		ev |= CURL_CSELECT_ERR;
	curl_multi_socket_action(c->multi, fd, ev, &running);
	http_check_done(c);
}

void http_on_timer(struct http_client *c)
{
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(c);
}

int http_running(const struct http_client *c)
{
	return c->running;
}
