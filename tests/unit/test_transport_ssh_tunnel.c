/* test_transport_ssh_tunnel: a driver for tests/bb/test_ssh_tunnel.py,
 * which starts a real sshd and an HTTP server on loopback and runs this
 * with TETHER_SSH_* in the environment.  Run alone (by ctest) it skips.
 *
 *   TETHER_SSH_URL, _KEY, _KNOWN_HOSTS, _PIN, _PASSFILE, _REMOTE_PORT
 *   TETHER_SSH_MODE=open        connect only; prints "OK <fingerprint>"
 *   TETHER_SSH_MODE=concurrent  over one tunnel, through the agent's HTTP
 *                               client (transport/http.c) with the tunnel as
 *                               its socket provider, at once: GET /poll (a
 *                               long-poll) and POST /upload of
 *                               TETHER_SSH_UPLOAD_MB MiB from a file; prints
 *                               one line per reply: "<name> <status> <ms>
 *                               <body>" in completion order. */
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/http.h"
#include "transport/ssh-tunnel.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FDS 64

struct loop {
	struct pollfd fds[MAX_FDS];
	int n;
	int64_t timer_at; /* -1: none */
	struct http_client *http;
	int done, failed;
	int64_t t0;
};

static int loop_watch(void *ctx, int fd, int what)
{
	struct loop *l = ctx;
	int i;

	for (i = 0; i < l->n && l->fds[i].fd != fd; i++)
		;
	if (what == 0) {
		if (i < l->n)
			l->fds[i] = l->fds[--l->n];
		return 0;
	}
	if (i == l->n) {
		if (l->n == MAX_FDS)
			return -1;
		l->n++;
	}
	l->fds[i].fd = fd;
	l->fds[i].events = (short)(((what & HTTP_WATCH_IN) ? POLLIN : 0) |
	                           ((what & HTTP_WATCH_OUT) ? POLLOUT : 0));
	return 0;
}

static void loop_timer(void *ctx, int64_t timeout_ms)
{
	struct loop *l = ctx;

	l->timer_at = timeout_ms < 0 ? -1 : now_mono_ms() + timeout_ms;
}

static void loop_run(struct loop *l, int want, int64_t deadline)
{
	struct pollfd fds[MAX_FDS];
	int i, n, timeout;

	while (l->done < want && now_mono_ms() < deadline) {
		timeout = 200;
		if (l->timer_at >= 0) {
			int64_t d = l->timer_at - now_mono_ms();
			timeout = d < 0 ? 0 : (d < timeout ? (int)d : timeout);
		}
		n = l->n;
		memcpy(fds, l->fds, sizeof(fds[0]) * (size_t)n);
		poll(fds, (nfds_t)n, timeout);
		for (i = 0; i < n; i++) {
			int w = 0;
			if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
				w |= HTTP_WATCH_IN;
			if (fds[i].revents & POLLOUT)
				w |= HTTP_WATCH_OUT;
			if (w)
				http_on_fd(l->http, fds[i].fd, w);
		}
		if (l->timer_at >= 0 && now_mono_ms() >= l->timer_at) {
			l->timer_at = -1;
			http_on_timer(l->http);
		}
	}
}

struct call {
	struct loop *l;
	const char *name;
};

static void on_done(void *arg, const struct http_result *res)
{
	struct call *c = arg;

	printf("%s %ld %lld %.*s%s\n", c->name, res->status,
	       (long long)(now_mono_ms() - c->l->t0), (int)res->body_len,
	       res->body ? res->body : "", res->code ? res->err.msg : "");
	fflush(stdout);
	c->l->done++;
	if (res->code != 0 || res->status != 200)
		c->l->failed++;
}

/* A file of mb MiB of varied bytes, opened for reading, unlinked. */
static int make_upload(int64_t mb)
{
	char path[] = "/tmp/tether-ssh-upload-XXXXXX", blk[65536];
	int fd = mkstemp(path);
	int64_t i;

	if (fd < 0)
		return -1;
	unlink(path);
	for (i = 0; i < mb * 16; i++) {
		for (size_t j = 0; j < sizeof(blk); j++)
			blk[j] = (char)((i * 131 + (int64_t)j * 7) & 0xff);
		if (write(fd, blk, sizeof(blk)) != (ssize_t)sizeof(blk))
			return -1;
	}
	return fd;
}

static int run_concurrent(struct ssh_tunnel *t)
{
	struct loop l = {.timer_at = -1, .t0 = now_mono_ms()};
	struct http_loop_hooks h = {&l, loop_watch, loop_timer};
	struct http_opts o = {0};
	char base[64];
	const char *mbs = getenv("TETHER_SSH_UPLOAD_MB");
	int64_t mb = mbs ? strtoll(mbs, NULL, 10) : 50;
	struct call poll_call = {&l, "poll"}, up_call = {&l, "upload"};
	struct http_request poll_rq = {.method = "GET",
	                               .path = "/poll",
	                               .upload_fd = -1,
	                               .download_fd = -1,
	                               .timeout_ms = 60000,
	                               .done = on_done,
	                               .arg = &poll_call};
	struct http_request up_rq = {.method = "POST",
	                             .path = "/upload",
	                             .upload_fd = -1,
	                             .download_fd = -1,
	                             .timeout_ms = 120000,
	                             .done = on_done,
	                             .arg = &up_call};
	struct err e = {0};
	int fd = make_upload(mb);

	ssh_tunnel_http(t, base, sizeof(base), &o.provider);
	o.base_url = base;
	if (fd < 0 || http_client_new(&o, &h, &l.http, &e) < 0) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return 1;
	}
	up_rq.upload_fd = fd;
	up_rq.upload_len = mb << 20;
	if (http_start(l.http, &poll_rq, NULL, &e) < 0 ||
	    http_start(l.http, &up_rq, NULL, &e) < 0) {
		fprintf(stderr, "start: %s\n", e.msg);
		return 1;
	}
	loop_run(&l, 2, now_mono_ms() + 120000);
	http_client_free(l.http);
	close(fd);
	return l.done == 2 && l.failed == 0 ? 0 : 1;
}

int main(void)
{
	const char *rp = getenv("TETHER_SSH_REMOTE_PORT");
	const char *mode = getenv("TETHER_SSH_MODE");
	struct ssh_tunnel_opts o = {
	    .url = getenv("TETHER_SSH_URL"),
	    .known_hosts = getenv("TETHER_SSH_KNOWN_HOSTS"),
	    .pinned_fingerprint = getenv("TETHER_SSH_PIN"),
	    .key_file = getenv("TETHER_SSH_KEY"),
	    .passphrase_file = getenv("TETHER_SSH_PASSFILE"),
	    .remote_port = rp ? (int)strtol(rp, NULL, 10) : 0,
	    .connect_timeout_ms = 10000};
	struct ssh_tunnel *t = NULL;
	struct err e = {0};
	int rc;

	if (o.url == NULL || mode == NULL) {
		printf(
		    "skipped: needs sshd; run tests/bb/test_ssh_tunnel.py\n");
		return 77;
	}
	log_set_level(LOG_DEBUG);
	if (ssh_tunnel_open(&o, &t, &e) < 0) {
		printf("ERROR %s: %s\n", err_name(e.code), e.msg);
		return 1;
	}
	printf("OK\n");
	fflush(stdout);
	rc = strcmp(mode, "concurrent") == 0 ? run_concurrent(t) : 0;
	ssh_tunnel_close(t);
	return rc;
}
