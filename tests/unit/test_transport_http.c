/* Unit tests of the async HTTP client (transport/http.c): a request driven
 * by a tiny epoll loop against a one-shot HTTP server in a thread, reached
 * through the socket-provider hook (as the SSH transport does), with a
 * file-range upload and Retry-After. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "transport/http.h"

struct server {
	int fd;
	char request[65536];
	size_t len;
	const char *reply;
};

/* Read one request (headers + Content-Length body), send the reply. */
static void *server_main(void *arg)
{
	struct server *s = arg;
	char *hdr_end = NULL;
	size_t want = 0;
	ssize_t n;

	while (s->len < sizeof(s->request) - 1) {
		n = read(s->fd, s->request + s->len,
		         sizeof(s->request) - 1 - s->len);
		if (n <= 0)
			break;
		s->len += (size_t)n;
		s->request[s->len] = '\0';
		if (hdr_end == NULL &&
		    (hdr_end = strstr(s->request, "\r\n\r\n")) != NULL) {
			char *cl = strcasestr(s->request, "Content-Length:");
			want = (size_t)(hdr_end + 4 - s->request) +
			       (cl ? strtoul(cl + 15, NULL, 10) : 0);
		}
		if (hdr_end != NULL && s->len >= want)
			break;
	}
	if (write(s->fd, s->reply, strlen(s->reply)) < 0)
		return NULL;
	shutdown(s->fd, SHUT_WR);
	return NULL;
}

struct ctx {
	int epfd;
	int64_t timer_ms;
	bool done;
	struct http_result res;
	char body[256];
	struct server srv;
	pthread_t thread;
	int port, provided;
};

static int hook_watch(void *arg, int fd, int what)
{
	struct ctx *c = arg;
	struct epoll_event ev = {.data.fd = fd};

	if (what == 0) {
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}
	ev.events = ((what & HTTP_WATCH_IN) ? EPOLLIN : 0) |
	            ((what & HTTP_WATCH_OUT) ? EPOLLOUT : 0);
	if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void hook_timer(void *arg, int64_t ms)
{
	((struct ctx *)arg)->timer_ms = ms;
}

static void *accept_main(void *arg)
{
	struct server *s = arg;
	int lfd = s->fd;

	s->fd = accept(lfd, NULL, NULL);
	close(lfd);
	if (s->fd < 0)
		return NULL;
	server_main(s);
	close(s->fd);
	return NULL;
}

/* curl 7.88 connect()s a provided socket even when told it is connected
 * (fixed in 8.0.0); the provider then hands out an unconnected one. */
static bool curl_connects_anyway(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	return v->version_num >= 0x075800 && v->version_num < 0x080000;
}

/* The provider: a TCP stream to the test server's loopback listener. */
static int provider_open(void *arg, int *fd, struct err *e)
{
	struct ctx *c = arg;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)c->port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return err_sys(e, TERR_IO, "socket");
	if (!curl_connects_anyway() &&
	    connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return err_sys(e, TERR_IO, "connect");
	}
	c->provided++;
	*fd = s;
	return 0;
}

static int listen_loopback(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 4), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return s;
}

static void on_done(void *arg, const struct http_result *res)
{
	struct ctx *c = arg;

	c->done = true;
	c->res = *res;
	snprintf(c->body, sizeof(c->body), "%s", res->body);
}

static void run_until_done(struct ctx *c, struct http_client *h)
{
	while (!c->done) {
		struct epoll_event ev[8];
		int n = epoll_wait(c->epfd, ev, 8,
		                   c->timer_ms < 0 ? 1000 : (int)c->timer_ms);
		if (n == 0 || c->timer_ms == 0) {
			c->timer_ms = -1;
			http_on_timer(h);
		}
		for (int i = 0; i < n; i++)
			http_on_fd(
			    h, ev[i].data.fd,
			    ((ev[i].events & EPOLLIN) ? HTTP_WATCH_IN : 0) |
			        ((ev[i].events & EPOLLOUT) ? HTTP_WATCH_OUT
			                                   : 0));
	}
}

static void test_upload_range_through_provider(void **state)
{
	struct ctx c = {.timer_ms = -1};
	struct http_loop_hooks hooks = {&c, hook_watch, hook_timer};
	struct http_opts o = {.provider = {&c, provider_open}};
	char base[64];
	struct http_client *h;
	struct http_request rq = {0};
	struct err e = {0};
	char tmpl[] = "/tmp/tether-unit-http-XXXXXX";
	int fd = mkstemp(tmpl);
	const char *hdrs[] = {"X-Test: 1", NULL};

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	c.epfd = epoll_create1(EPOLL_CLOEXEC);
	c.srv.fd = listen_loopback(&c.port);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", c.port);
	o.base_url = base;
	pthread_create(&c.thread, NULL, accept_main, &c.srv);
	c.srv.reply = "HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n"
	              "Content-Length: 11\r\nConnection: close\r\n\r\n"
	              "{\"ok\":true}";
	assert_int_equal(http_client_new(&o, &hooks, &h, &e), 0);
	rq.method = "POST";
	rq.path = "/api/v1/x?offset=3";
	rq.headers = hdrs;
	rq.upload_fd = fd;
	rq.upload_off = 3;
	rq.upload_len = 4;
	rq.download_fd = -1;
	rq.timeout_ms = 5000;
	rq.done = on_done;
	rq.arg = &c;
	assert_int_equal(http_start(h, &rq, NULL, &e), 0);
	run_until_done(&c, h);
	pthread_join(c.thread, NULL);
	assert_int_equal(c.res.code, 0);
	assert_int_equal(c.provided, 1);
	assert_int_equal(c.res.status, 429);
	assert_int_equal(c.res.retry_after_ms, 7000);
	assert_string_equal(c.body, "{\"ok\":true}");
	assert_non_null(strstr(c.srv.request, "POST /api/v1/x?offset=3 "));
	assert_non_null(strstr(c.srv.request, "X-Test: 1\r\n"));
	assert_non_null(strstr(c.srv.request, "\r\n\r\n3456"));
	assert_int_equal(http_running(h), 0);
	http_client_free(h);
	close(c.epfd);
	close(fd);
	unlink(tmpl);
}

static void test_plain_http_refused_off_loopback(void **state)
{
	struct ctx c = {.timer_ms = -1};
	struct http_loop_hooks hooks = {&c, hook_watch, hook_timer};
	struct http_opts o = {.base_url = "http://example.com"};
	struct http_client *h = NULL;
	struct err e = {0};

	assert_int_equal(http_client_new(&o, &hooks, &h, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "https"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_upload_range_through_provider),
	    cmocka_unit_test(test_plain_http_refused_off_loopback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
