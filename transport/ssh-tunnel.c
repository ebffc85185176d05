/* ssh-tunnel.c: an SSH connection that hands out TCP streams to the far
 * side's loopback HTTP listener (transport/ssh-tunnel.h).
 *
 * Design: one dedicated thread owns the libssh2 session and every channel
 * (libssh2 sessions are not thread-safe).  Callers get the other end of a
 * socketpair from ssh_tunnel_connect() and never touch libssh2, so:
 *  - the agent's event loop (libcurl multi) sees ordinary sockets and needs
 *    no knowledge of SSH; curl's own backpressure works on them;
 *  - a slow step inside libssh2 (key re-exchange, a connect or handshake
 *    to a slow server) never stalls the agent's loop, which also watches
 *    the runners;
 *  - the one-call-at-a-time rule of non-blocking libssh2 (ssh-tunnel-pump.c)
 *    is kept in one place.
 *
 * States: UP (pumping), CONNECTING (the thread connects; new streams wait
 * in a queue), DOWN (the last attempt failed or the connection died).  A
 * stream asked for while DOWN fails at once with the reason and starts a
 * reconnect in the thread, so the caller's retry schedule (the agent's
 * backoff, as for HTTPS) paces reconnects and its loop never blocks. */
#include "transport/ssh-tunnel-int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PENDING 64
#define MAX_ADMIT   64
#define ADMIT_MS    60000

enum tstate { T_DOWN, T_CONNECTING, T_UP };

struct ssh_tunnel {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	enum tstate state;
	int wake[2]; /* write a byte to wake the thread */
	int pending[MAX_PENDING];
	int npending;
	int lfd, lport; /* the loopback listener (ssh_tunnel_socket) */
	struct {
		int port;
		int64_t until;
	} admit[MAX_ADMIT]; /* source ports handed out, not yet accepted */
	int nadmit;
	struct err last; /* why the tunnel is DOWN */
	/* Options, copied; the thread alone uses what follows. */
	struct ssh_tunnel_opts o;
	char *url, *known_hosts, *pin, *key, *pass, *rhost;
	struct ssh_conn *conn;
	struct ssh_pump *pump;
};

static void copy_opts(struct ssh_tunnel *t, const struct ssh_tunnel_opts *o)
{
	t->o = *o;
	t->o.url = t->url = o->url ? xstrdup(o->url) : NULL;
	t->o.known_hosts = t->known_hosts =
	    o->known_hosts ? xstrdup(o->known_hosts) : NULL;
	t->o.pinned_fingerprint = t->pin =
	    o->pinned_fingerprint ? xstrdup(o->pinned_fingerprint) : NULL;
	t->o.key_file = t->key = o->key_file ? xstrdup(o->key_file) : NULL;
	t->o.passphrase_file = t->pass =
	    o->passphrase_file ? xstrdup(o->passphrase_file) : NULL;
	t->o.remote_host = t->rhost =
	    xstrdup(o->remote_host ? o->remote_host : "127.0.0.1");
	if (t->o.remote_port <= 0)
		t->o.remote_port = 8080;
	if (t->o.keepalive_s < 0)
		t->o.keepalive_s = 0;
	else if (t->o.keepalive_s == 0)
		t->o.keepalive_s = 15;
}

static void wake(struct ssh_tunnel *t)
{
	char c = 1;

	if (write(t->wake[1], &c, 1) < 0 && errno != EAGAIN)
		log_warn_errno("ssh tunnel: wake");
}

/* Close the streams that were waiting for a connection (under t->mu). */
static void fail_pending(struct ssh_tunnel *t)
{
	int i;

	for (i = 0; i < t->npending; i++)
		close(t->pending[i]);
	t->npending = 0;
}

/* Connect (in the thread, without the lock held). */
static void tunnel_connect(struct ssh_tunnel *t)
{
	struct ssh_conn *c = NULL;
	struct err e = {0};
	int r;

	r = ssh_conn_open(&t->o, &c, &e);
	if (r == 0 && t->o.keepalive_s > 0)
		libssh2_keepalive_config(c->session, 1,
		                         (unsigned)t->o.keepalive_s);
	pthread_mutex_lock(&t->mu);
	if (r == 0) {
		t->conn = c;
		t->pump = ssh_pump_new(c, t->rhost, t->o.remote_port,
		                       t->o.keepalive_s);
		t->state = T_UP;
	} else {
		log_warn("%s", e.msg);
		t->last = e;
		t->state = T_DOWN;
		fail_pending(t);
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
}

/* The connection died: drop every stream, keep the reason. */
static void tunnel_down(struct ssh_tunnel *t, const struct err *e)
{
	log_warn("ssh tunnel %s: %s", t->url, e->msg);
	ssh_pump_free(t->pump);
	t->pump = NULL;
	ssh_conn_close(t->conn);
	t->conn = NULL;
	pthread_mutex_lock(&t->mu);
	t->last = *e;
	err_wrap(&t->last, "ssh tunnel %s", t->url);
	t->state = T_DOWN;
	fail_pending(t);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
}

/* The loopback listener that ssh_tunnel_socket() streams connect to. */
static int listener_open(struct ssh_tunnel *t, struct err *e)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	t->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (t->lfd < 0)
		return err_sys(e, TERR_IO, "ssh tunnel: socket");
	if (bind(t->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(t->lfd, MAX_PENDING) < 0 ||
	    getsockname(t->lfd, (struct sockaddr *)&a, &al) < 0)
		return err_sys(e, TERR_IO, "ssh tunnel: loopback listener");
	t->lport = ntohs(a.sin_port);
	return 0;
}

/* Was port handed out by ssh_tunnel_socket (and not used yet)?  Under mu. */
static bool admit_take(struct ssh_tunnel *t, int port)
{
	int64_t now = now_mono_ms();
	bool ok = false;
	int i, j = 0;

	for (i = 0; i < t->nadmit; i++) {
		if (t->admit[i].port == port && !ok) {
			ok = true;
			continue;
		}
		if (t->admit[i].until > now)
			t->admit[j++] = t->admit[i];
	}
	t->nadmit = j;
	return ok;
}

/* Accept the listener's connections: ours join the queue of streams, any
 * other local process is turned away. */
static void accept_streams(struct ssh_tunnel *t)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd, one = 1;
	bool ok;

	while ((fd = accept4(t->lfd, (struct sockaddr *)&a, &al,
	                     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		pthread_mutex_lock(&t->mu);
		ok = a.sin_family == AF_INET &&
		     a.sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
		     admit_take(t, ntohs(a.sin_port)) && t->state != T_DOWN &&
		     t->npending < MAX_PENDING;
		if (ok)
			t->pending[t->npending++] = fd;
		pthread_mutex_unlock(&t->mu);
		if (!ok) {
			log_warn("ssh tunnel: turned away a local connection "
			         "from port %d (not made by this process, or "
			         "the tunnel is down)",
			         ntohs(a.sin_port));
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		al = sizeof(a);
	}
}

static void idle_wait(struct ssh_tunnel *t)
{
	struct pollfd pfd[2] = {{.fd = t->wake[0], .events = POLLIN},
	                        {.fd = t->lfd, .events = POLLIN}};
	char buf[64];

	if (poll(pfd, 2, -1) > 0)
		while (read(t->wake[0], buf, sizeof(buf)) > 0)
			;
	accept_streams(t);
}

static void *tunnel_main(void *arg)
{
	struct ssh_tunnel *t = arg;
	struct err e = {0};
	enum tstate st;

	for (;;) {
		pthread_mutex_lock(&t->mu);
		if (t->stop) {
			pthread_mutex_unlock(&t->mu);
			break;
		}
		st = t->state;
		if (st == T_UP) {
			for (int i = 0; i < t->npending; i++)
				ssh_pump_add(t->pump, t->pending[i]);
			t->npending = 0;
		}
		pthread_mutex_unlock(&t->mu);
		if (st == T_CONNECTING)
			tunnel_connect(t);
		else if (st == T_DOWN)
			idle_wait(t);
		else if (ssh_pump_step(t->pump, t->wake[0], t->lfd, -1, &e) < 0)
			tunnel_down(t, &e);
		else
			accept_streams(t);
	}
	return NULL;
}

static int tunnel_new(const struct ssh_tunnel_opts *o, struct ssh_tunnel **out,
                      struct err *e)
{
	struct ssh_tunnel *t = xcalloc(1, sizeof(*t));
	struct ssh_target tg = {0};
	int r;

	if ((r = ssh_url_parse(o->url, &tg, e)) < 0) {
		free(t);
		return r;
	}
	ssh_target_free(&tg);
	copy_opts(t, o);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->lfd = -1;
	if (pipe2(t->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = err_sys(e, TERR_IO, "ssh tunnel: pipe");
		t->wake[0] = t->wake[1] = -1;
		ssh_tunnel_close(t);
		return r;
	}
	if ((r = listener_open(t, e)) < 0) {
		ssh_tunnel_close(t);
		return r;
	}
	t->state = T_CONNECTING;
	if ((errno = pthread_create(&t->thread, NULL, tunnel_main, t)) != 0) {
		r = err_sys(e, TERR_FAIL, "ssh tunnel: thread");
		ssh_tunnel_close(t);
		return r;
	}
	t->started = true;
	*out = t;
	return 0;
}

int ssh_tunnel_open(const struct ssh_tunnel_opts *o, struct ssh_tunnel **out,
                    struct err *e)
{
	struct ssh_tunnel *t = NULL;
	int r;

	if ((r = tunnel_new(o, &t, e)) < 0)
		return r;
	pthread_mutex_lock(&t->mu);
	while (t->state == T_CONNECTING)
		pthread_cond_wait(&t->cond, &t->mu);
	if (t->state == T_DOWN) {
		r = t->last.code ? t->last.code : TERR_NET;
		err_set(e, r, "%s", t->last.msg);
	}
	pthread_mutex_unlock(&t->mu);
	if (r < 0) {
		ssh_tunnel_close(t);
		return r;
	}
	*out = t;
	return 0;
}

int ssh_tunnel_start(const struct ssh_tunnel_opts *o, struct ssh_tunnel **out,
                     struct err *e)
{
	return tunnel_new(o, out, e);
}

/* Room for one more stream?  While DOWN: no, and start a reconnect. */
static int stream_check(struct ssh_tunnel *t, struct err *e)
{
	int r = 0;

	pthread_mutex_lock(&t->mu);
	if (t->state == T_DOWN) {
		r = err_set(e, TERR_NET, "%s (reconnecting)", t->last.msg);
		t->state = T_CONNECTING;
	} else if (t->npending >= MAX_PENDING || t->nadmit >= MAX_ADMIT) {
		r = err_set(e, TERR_BUSY, "ssh tunnel %s: %d streams waiting",
		            t->url, t->npending + t->nadmit);
	}
	pthread_mutex_unlock(&t->mu);
	if (r < 0)
		wake(t);
	return r;
}

int ssh_tunnel_socket(struct ssh_tunnel *t, bool do_connect, int *fd,
                      struct err *e)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int s, r;

	if ((r = stream_check(t, e)) < 0)
		return r;
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return err_sys(e, TERR_IO, "ssh tunnel: socket");
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al) < 0) {
		r = err_sys(e, TERR_IO, "ssh tunnel: bind");
		close(s);
		return r;
	}
	pthread_mutex_lock(&t->mu);
	admit_take(t, -1); /* drop expired entries */
	if (t->nadmit < MAX_ADMIT) {
		t->admit[t->nadmit].port = ntohs(a.sin_port);
		t->admit[t->nadmit++].until = now_mono_ms() + ADMIT_MS;
	} else {
		r = err_set(e, TERR_BUSY, "ssh tunnel %s: too many streams",
		            t->url);
	}
	pthread_mutex_unlock(&t->mu);
	if (r < 0) {
		close(s);
		return r;
	}
	a.sin_port = htons((uint16_t)t->lport);
	if (do_connect && connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = err_sys(e, TERR_IO, "ssh tunnel: connect to its listener");
		close(s);
		return r;
	}
	*fd = s;
	return 0;
}

int ssh_tunnel_port(const struct ssh_tunnel *t)
{
	return t->lport;
}

int ssh_tunnel_connect(struct ssh_tunnel *t, int *fd, struct err *e)
{
	int sv[2], r = 0;

	if ((r = stream_check(t, e)) < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_sys(e, TERR_IO, "ssh tunnel: socketpair");
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	pthread_mutex_lock(&t->mu);
	if (t->npending < MAX_PENDING)
		t->pending[t->npending++] = sv[1];
	else
		r = err_set(e, TERR_BUSY, "ssh tunnel %s: too many streams",
		            t->url);
	pthread_mutex_unlock(&t->mu);
	if (r < 0) {
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	wake(t);
	*fd = sv[0];
	return 0;
}

bool ssh_tunnel_alive(struct ssh_tunnel *t)
{
	bool up;

	pthread_mutex_lock(&t->mu);
	up = t->state != T_DOWN;
	pthread_mutex_unlock(&t->mu);
	return up;
}

void ssh_tunnel_close(struct ssh_tunnel *t)
{
	if (t == NULL)
		return;
	if (t->started) {
		pthread_mutex_lock(&t->mu);
		t->stop = true;
		pthread_mutex_unlock(&t->mu);
		wake(t);
		pthread_join(t->thread, NULL);
	}
	fail_pending(t);
	ssh_pump_free(t->pump);
	ssh_conn_close(t->conn);
	if (t->lfd >= 0)
		close(t->lfd);
	if (t->wake[0] >= 0) {
		close(t->wake[0]);
		close(t->wake[1]);
	}
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->mu);
	free(t->url);
	free(t->known_hosts);
	free(t->pin);
	free(t->key);
	free(t->pass);
	free(t->rhost);
	free(t);
}
