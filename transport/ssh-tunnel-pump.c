/* ssh-tunnel-pump.c: move bytes between the local ends of socketpairs and
 * direct-tcpip channels of one libssh2 session, both ways, non-blocking.
 *
 * Each stream has a bounded buffer per direction (CHAN_BUF): we read from
 * the local socket only while the upward buffer has room, and from the
 * channel only while the downward one has room, so a slow reader stops its
 * own stream (libssh2 then stops growing the channel window and the server
 * stops sending) without stalling the others.
 *
 * libssh2 rule that shapes this file: when a call returns EAGAIN after it
 * has sent part of a packet, that same call must be repeated, with the same
 * arguments, before any other call that sends on the session; otherwise
 * libssh2 finishes the old packet on behalf of the new call and reports the
 * new data as sent (silent loss).  So such a call is recorded as `stuck`
 * and is the only libssh2 call made until it completes; channel opens (one
 * session-wide state machine in libssh2) run one at a time. */
#include "transport/ssh-tunnel-pump.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

/* libssh2's socket reads, counted: a call made for one stream may read
 * (and queue inside libssh2) packets of another stream, window adjusts or
 * an open confirmation, which no poll() would then announce; so the pump
 * keeps going round while libssh2 keeps reading.
 * Each read that brought bytes re-arms TCP_QUICKACK, so that they are
 * acknowledged at once: sshd sends a forwarded connection's data with
 * Nagle on (its TCP_NODELAY is for interactive sessions), and the second
 * of two small packets (one HTTP reply after another) waited for this
 * end's delayed ACK, 40 ms (docs/performance.md, row 2 ssh).  The kernel
 * leaves quick-ack mode by itself, hence every time. */
static LIBSSH2_RECV_FUNC(pump_recv)
{
	static const int one = 1;
	struct ssh_pump *p = *abstract;
	ssize_t n = recv(socket, buffer, length, flags);

	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	setsockopt(socket, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	if (p != NULL) {
		p->rx_bytes += (uint64_t)n;
		p->last_rx_ms = now_mono_ms();
	}
	return n;
}

struct ssh_pump *ssh_pump_new(struct ssh_conn *c, const char *remote_host,
                              int remote_port, int keepalive_s)
{
	struct ssh_pump *p = xcalloc(1, sizeof(*p));

	p->c = c;
	p->rhost = xstrdup(remote_host);
	p->rport = remote_port;
	p->keepalive_s = keepalive_s;
	p->last_rx_ms = p->last_move_ms = p->last_ka_ms = now_mono_ms();
	*libssh2_session_abstract(c->session) = p;
	libssh2_session_callback_set(c->session, LIBSSH2_CALLBACK_RECV,
	                             (void *)pump_recv);
	return p;
}

void ssh_pump_add(struct ssh_pump *p, int fd)
{
	struct chan *ch;

	if (p->n >= MAX_STREAMS) {
		log_warn("ssh tunnel: %d streams open; refusing another", p->n);
		close(fd);
		return;
	}
	ch = xcalloc(1, sizeof(*ch));
	ch->fd = fd;
	p->chans[p->n++] = ch;
}

int ssh_pump_count(const struct ssh_pump *p)
{
	return p->n;
}

/* One pass over the streams; true when anything moved. */
static bool pump_round(struct ssh_pump *p)
{
	bool moved = false;
	int i;

	if (p->stuck != NULL)
		moved = ssh_chan_retry_stuck(p);
	for (i = 0; i < p->n && !p->fatal; i++) {
		moved |= ssh_chan_local_io(p, p->chans[i]);
		if (p->stuck == NULL)
			moved |= ssh_chan_step(p, p->chans[i]);
	}
	return moved;
}

/* Drop streams whose channel and local end are both gone. */
static void reap(struct ssh_pump *p)
{
	int i, j = 0;

	for (i = 0; i < p->n; i++) {
		struct chan *ch = p->chans[i];

		if (ch->state == CH_CLOSING && ch->ch == NULL && ch->fd < 0 &&
		    p->stuck != ch && p->opening != ch) {
			free(ch);
			continue;
		}
		p->chans[j++] = ch;
	}
	p->n = j;
}

/* Would a libssh2 call read the socket now?  If not, polling it for input
 * would spin (nobody drains it), so only its hang-up is watched. */
static bool wants_input(const struct ssh_pump *p)
{
	int i;

	if (p->stuck != NULL || p->opening != NULL)
		return true;
	for (i = 0; i < p->n; i++) {
		const struct chan *ch = p->chans[i];

		if (ch->state == CH_CLOSING && ch->ch != NULL)
			return true;
		if (ch->state == CH_OPEN && !ch->remote_eof &&
		    ch->down_len < CHAN_BUF)
			return true;
	}
	return false;
}

/* Send a keepalive when nothing came from the server for an interval
 * (traffic already proves it alive), and only when the session has been
 * quiet for a second: then the socket's send buffer is empty and the small
 * packet cannot be half-sent (libssh2 would report a half-sent keepalive as
 * sent, and the next call would be fooled: see the top of this file).
 * *next_ms: when to look again (-1: no need; an idle tunnel sleeps). */
static void keepalive(struct ssh_pump *p, int *next_ms)
{
	int64_t now = now_mono_ms(), ka = (int64_t)p->keepalive_s * 1000;
	int64_t last =
	    p->last_rx_ms > p->last_ka_ms ? p->last_rx_ms : p->last_ka_ms;
	struct pollfd pfd = {.fd = p->c->sock, .events = POLLOUT};
	int next_s = 0;

	*next_ms = -1;
	if (p->keepalive_s <= 0 || p->stuck != NULL)
		return;
	if (now - last < ka) {
		*next_ms = (int)(ka - (now - last));
		return;
	}
	if (now - p->last_move_ms < 1000 || poll(&pfd, 1, 0) != 1) {
		*next_ms = 100 + (int)(now - p->last_move_ms < 1000
		                           ? 1000 - (now - p->last_move_ms)
		                           : 0);
		return;
	}
	if (libssh2_keepalive_send(p->c->session, &next_s) < 0) {
		p->fatal = LIBSSH2_ERROR_SOCKET_SEND;
		snprintf(p->fatal_msg, sizeof(p->fatal_msg), "keepalive: %s",
		         ssh_conn_errmsg(p->c->session));
	} else if (libssh2_session_block_directions(p->c->session) &
	           LIBSSH2_SESSION_BLOCK_OUTBOUND) {
		p->fatal = LIBSSH2_ERROR_SOCKET_SEND;
		snprintf(p->fatal_msg, sizeof(p->fatal_msg),
		         "keepalive could not be sent whole");
	}
	p->last_ka_ms = now;
	*next_ms = (int)ka;
}

/* Dead when the server hung up, or when it answered nothing (keepalive
 * replies included) for three keepalive periods while we were listening. */
static void check_alive(struct ssh_pump *p, short revents, bool listened)
{
	int64_t quiet = now_mono_ms() - p->last_rx_ms;

	if (p->fatal)
		return;
	if (revents & (POLLHUP | POLLERR | POLLRDHUP)) {
		p->fatal = LIBSSH2_ERROR_SOCKET_DISCONNECT;
		snprintf(p->fatal_msg, sizeof(p->fatal_msg),
		         "the server closed the connection");
	} else if (p->keepalive_s > 0 && listened &&
	           quiet > 3 * (int64_t)p->keepalive_s * 1000 + 1000) {
		p->fatal = LIBSSH2_ERROR_SOCKET_TIMEOUT;
		snprintf(p->fatal_msg, sizeof(p->fatal_msg),
		         "no answer from the server for %lld ms",
		         (long long)quiet);
	}
}

static void drain_wake(int fd)
{
	char buf[64];

	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
}

static int build_pollset(struct ssh_pump *p, struct pollfd *pfd, int wake_fd,
                         int listen_fd, bool *listened)
{
	int dir = libssh2_session_block_directions(p->c->session), i, n = 3;

	*listened = wants_input(p);
	pfd[0].fd = p->c->sock;
	pfd[0].events = POLLRDHUP | (*listened ? POLLIN : 0) |
	                ((dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) ? POLLOUT : 0);
	pfd[1].fd = wake_fd;
	pfd[1].events = POLLIN;
	pfd[2].fd = listen_fd;
	pfd[2].events = POLLIN;
	for (i = 0; i < p->n; i++) {
		struct chan *ch = p->chans[i];

		pfd[n].fd = ch->fd;
		pfd[n].events = 0;
		if (ch->fd >= 0 && !ch->local_gone) {
			if (!ch->local_eof && ch->up_len < CHAN_BUF)
				pfd[n].events |= POLLIN;
			if (ch->down_len > ch->down_off)
				pfd[n].events |= POLLOUT;
		}
		n++;
	}
	return n;
}

int ssh_pump_step(struct ssh_pump *p, int wake_fd, int listen_fd,
                  int timeout_ms, struct err *e)
{
	struct pollfd pfd[MAX_STREAMS + 3];
	bool listened;
	int n, i, next_ms, rounds = 0;

	keepalive(p, &next_ms);
	if (next_ms >= 0 && (timeout_ms < 0 || next_ms < timeout_ms))
		timeout_ms = next_ms;
	if (p->more)
		timeout_ms = 0;
	n = build_pollset(p, pfd, wake_fd, listen_fd, &listened);
	if (poll(pfd, (nfds_t)n, timeout_ms) < 0 && errno != EINTR)
		return err_sys(e, TERR_IO, "ssh tunnel: poll");
	if (pfd[0].revents & POLLIN)
		p->last_rx_ms = now_mono_ms();
	if (pfd[1].revents & POLLIN)
		drain_wake(wake_fd);
	for (i = 3; i < n; i++) {
		struct chan *ch = p->chans[i - 3];
		short rev = pfd[i].revents;

		/* A hang-up with input left: read it (and the EOF) first. */
		if ((rev & (POLLERR | POLLNVAL)) ||
		    ((rev & POLLHUP) && (!(rev & POLLIN) || ch->local_eof)))
			ch->local_gone = true;
	}
	/* Go round until nothing moved and libssh2 read nothing more. */
	for (;;) {
		uint64_t rx = p->rx_bytes;
		bool moved = pump_round(p);

		if (moved)
			p->last_move_ms = now_mono_ms();
		p->more = moved || p->rx_bytes != rx;
		if (!p->more || p->fatal || ++rounds >= MAX_ROUNDS)
			break;
	}
	check_alive(p, pfd[0].revents, listened);
	reap(p);
	if (p->fatal)
		return err_set(e, TERR_NET, "SSH connection lost: %s",
		               p->fatal_msg);
	return 0;
}

void ssh_pump_free(struct ssh_pump *p)
{
	int i;

	if (p == NULL)
		return;
	*libssh2_session_abstract(p->c->session) = NULL;
	for (i = 0; i < p->n; i++) {
		ssh_chan_close_local(p->chans[i]);
		free(p->chans[i]);
	}
	free(p->rhost);
	free(p);
}
