/* http.h: an asynchronous HTTP client over the libcurl multi socket API,
 * driven by the caller's event loop.
 *
 * The client never blocks and owns no thread: it tells the loop which fds
 * to watch and when to wake it (struct http_loop_hooks), and the loop calls
 * http_on_fd() / http_on_timer() back.  A request completes through its
 * callback, once, from inside one of those calls (or http_cancel).
 *
 * Socket provider: when `provider.open` is set, every connection uses a
 * socket it returns, already connected to the peer (the SSH transport hands
 * out streams of its tunnel this way); curl then skips connect().  The base
 * URL is then a plain http://127.0.0.1:PORT naming the far side. */
#ifndef TETHER_HTTP_H
#define TETHER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct http_client;
struct http_req;

enum { HTTP_WATCH_IN = 1, HTTP_WATCH_OUT = 2, HTTP_WATCH_ERR = 4 };

/* HTTP_WATCH_* bits for the events epoll reported on a watched fd. */
int http_watch_from_epoll(uint32_t events);

struct http_loop_hooks {
	void *ctx;
	/* Watch fd for `what` (HTTP_WATCH_* bits); what == 0: stop watching. */
	int (*watch)(void *ctx, int fd, int what);
	/* Call http_on_timer after timeout_ms (0 = at once); -1 = no timer. */
	void (*timer)(void *ctx, int64_t timeout_ms);
};

struct http_socket_provider {
	void *ctx;
	/* A connected stream socket the client then owns; 0 or TERR_*. */
	int (*open)(void *ctx, int *fd, struct err *e);
};

struct http_opts {
	const char *base_url; /* scheme://host[:port], no trailing slash */
	const char *ca_file;  /* PEM bundle; NULL = system store */
	const char *proxy;    /* NULL = curl's own https_proxy/no_proxy */
	const char *no_proxy;
	int64_t connect_timeout_ms;
	const char *user_agent;
	struct http_socket_provider provider; /* open == NULL: normal TCP */
};

/* What a finished request gives its callback.  body is NUL-terminated and
 * owned by the client (valid during the callback only). */
struct http_result {
	int code;    /* 0, or TERR_NET / TERR_TOOBIG / TERR_IO / ... */
	long status; /* HTTP status, 0 when no reply */
	const char *body;
	size_t body_len;
	int64_t retry_after_ms; /* -1 when absent */
	struct err err;         /* message when code < 0 */
};

typedef void (*http_done_fn)(void *arg, const struct http_result *res);

struct http_request {
	const char *method; /* GET, POST, PUT */
	const char *path; /* appended to base_url, e.g. /api/v1/agents/lease */
	const char *const *headers; /* NULL-terminated "Name: value", or NULL */
	/* Body from memory (copied) ... */
	const void *body;
	size_t body_len;
	/* ... or from a file range (upload_fd >= 0; the fd is dup()ed). */
	int upload_fd;
	int64_t upload_off, upload_len;
	/* Reply into a file (download_fd >= 0, dup()ed) or into memory. */
	int download_fd;
	size_t max_reply; /* cap on a memory reply */
	int64_t timeout_ms;
	/* 0: the client's connect timeout.  A long-poll sets it to its
	 * timeout_ms: libcurl 7.88 keeps the connect timer armed on a reused
	 * connection, which would wake an idle loop once per request. */
	int64_t connect_timeout_ms;
	http_done_fn done;
	void *arg;
};

int http_client_new(const struct http_opts *o, const struct http_loop_hooks *h,
                    struct http_client **out, struct err *e);
void http_client_free(struct http_client *c);
/* Start a request; *out (optional) identifies it for http_cancel. */
int http_start(struct http_client *c, const struct http_request *rq,
               struct http_req **out, struct err *e);
/* Abort a running request; its callback is not called. */
void http_cancel(struct http_client *c, struct http_req *r);
/* Abort a request and free() its callback argument. */
void http_cancel_free_arg(struct http_client *c, struct http_req *r);
/* Loop entry points. */
void http_on_fd(struct http_client *c, int fd, int what);
void http_on_timer(struct http_client *c);
/* Requests in flight. */
int http_running(const struct http_client *c);
/* True for http:// URLs whose host is loopback, or any https:// URL. */
bool http_url_allowed(const char *url);

#endif
