/* metrics-http.c: the loopback HTTP listener that serves GET /metrics.
 *
 * Non-blocking throughout: the listening socket and each client socket are
 * handed to the agent's loop (struct metrics_hooks); a request is read as
 * it arrives (capped), answered with one write, and the connection closed.
 * A reply that the socket cannot take at once is cut short (a loopback
 * socket buffer holds far more than the few kilobytes rendered). */
#include "agent/metrics.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 8
#define REQ_MAX     4096
#define REPLY_MAX   (1 << 20)

struct client {
	int fd;
	size_t len;
	char req[REQ_MAX];
};

static int listen_fd = -1;
static int bound_port;
static struct metrics_hooks hooks;
static struct client clients[MAX_CLIENTS];

int metrics_fd(void)
{
	return listen_fd;
}

int metrics_port(void)
{
	return bound_port;
}

static void client_close(struct client *c)
{
	if (c->fd < 0)
		return;
	if (hooks.watch)
		hooks.watch(hooks.ctx, c->fd, false);
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)
		                  ->sin_addr.s_addr) >>
		        24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(
		    &((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/* Split "host:port" / "[v6]:port" into its parts. */
static int split_listen(const char *s, char *host, size_t hlen, char *port,
                        size_t plen, struct err *e)
{
	const char *colon = strrchr(s, ':');
	size_t n;

	if (colon == NULL || colon[1] == 0)
		return err_set(e, TERR_INVAL,
		               "metrics_listen '%s': expected HOST:PORT "
		               "(e.g. 127.0.0.1:9464)",
		               s);
	n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
		return err_set(e, TERR_INVAL,
		               "metrics_listen '%s': bad address", s);
	memcpy(host, s, n);
	host[n] = 0;
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static int bind_listen(const struct addrinfo *ai, const char *spec,
                       struct err *e)
{
	int one = 1;
	int fd = socket(ai->ai_family,
	                ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (fd < 0)
		return err_sys(e, TERR_IO, "metrics_listen %s: socket", spec);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		err_sys(e, TERR_IO, "metrics_listen %s: bind", spec);
		close(fd);
		return TERR_IO;
	}
	bound_port = ntohs(ss.ss_family == AF_INET6
	                       ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int metrics_open(const char *listen, const struct metrics_hooks *h,
                 struct err *e)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char host[128], port[16];
	int r, fd;

	if (listen == NULL || listen[0] == 0)
		return 0;
	if ((r = split_listen(listen, host, sizeof(host), port, sizeof(port),
	                      e)) < 0)
		return r;
	if ((r = getaddrinfo(host, port, &hints, &ai)) != 0)
		return err_set(e, TERR_INVAL, "metrics_listen %s: %s", listen,
		               gai_strerror(r));
	if (!is_loopback(ai->ai_addr)) {
		freeaddrinfo(ai);
		return err_set(e, TERR_INVAL,
		               "metrics_listen %s: only loopback addresses "
		               "(127.0.0.1, ::1); expose them through a proxy",
		               listen);
	}
	fd = bind_listen(ai, listen, e);
	freeaddrinfo(ai);
	if (fd < 0)
		return fd;
	for (int i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	hooks = *h;
	if (hooks.watch && (r = hooks.watch(hooks.ctx, fd, true)) < 0) {
		close(fd);
		return err_set(e, r, "metrics_listen %s: cannot watch", listen);
	}
	listen_fd = fd;
	log_info("metrics on http://%s/metrics", listen);
	return 0;
}

/* Take a new connection; the oldest is dropped when all slots are used. */
static void accept_one(void)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct client *slot = NULL;

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS && slot == NULL; i++)
		if (clients[i].fd < 0)
			slot = &clients[i];
	if (slot == NULL) {
		slot = &clients[0];
		client_close(slot);
	}
	slot->fd = fd;
	slot->len = 0;
	if (hooks.watch && hooks.watch(hooks.ctx, fd, true) < 0)
		client_close(slot);
}

static void reply(struct client *c, const char *status, const char *ctype,
                  const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                 status, ctype, len);
	struct iovec_like {
		const char *p;
		size_t n;
	} parts[2] = {{head, (size_t)n}, {body, len}};

	for (int i = 0; i < 2; i++) {
		size_t off = 0;

		while (off < parts[i].n) {
			ssize_t w = send(c->fd, parts[i].p + off,
			                 parts[i].n - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return; /* full or gone: the reply is cut short
				         */
			off += (size_t)w;
		}
	}
}

static void serve(struct client *c)
{
	struct buf b;
	struct err e = {0};
	bool head = strncmp(c->req, "HEAD ", 5) == 0;

	if (strncmp(c->req, "GET /metrics ", 13) != 0 &&
	    strncmp(c->req, "GET /metrics?", 13) != 0 &&
	    strncmp(c->req, "HEAD /metrics ", 14) != 0) {
		static const char nf[] = "only GET /metrics here\n";

		reply(c, "404 Not Found", "text/plain", nf, sizeof(nf) - 1);
		return;
	}
	buf_init(&b, REPLY_MAX);
	if (metrics_render(&b, &e) < 0)
		log_warn("metrics: %s", e.msg);
	reply(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
	      head     ? ""
	      : b.data ? b.data
	               : "",
	      b.len);
	buf_free(&b);
}

static void client_read(struct client *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->req + c->len, REQ_MAX - 1 - c->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* wait for the rest of the request */
		if (n <= 0)
			break;
		c->len += (size_t)n;
		c->req[c->len] = 0;
		if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
			serve(c);
			break;
		}
		if (c->len == REQ_MAX - 1)
			break; /* too long: not a scrape */
	}
	client_close(c);
}

void metrics_handle(int fd)
{
	if (fd < 0 || listen_fd < 0)
		return;
	if (fd == listen_fd) {
		accept_one();
		return;
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd == fd) {
			client_read(&clients[i]);
			return;
		}
}

void metrics_close(void)
{
	if (listen_fd < 0)
		return; /* never opened: the client slots are not set up */
	for (int i = 0; i < MAX_CLIENTS; i++)
		client_close(&clients[i]);
	if (hooks.watch)
		hooks.watch(hooks.ctx, listen_fd, false);
	close(listen_fd);
	listen_fd = -1;
	bound_port = 0;
}
