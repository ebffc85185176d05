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
#include "transport/ssh-tunnel-int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHAN_BUF    (64 * 1024)
#define MAX_STREAMS 128
#define MAX_ROUNDS  64

enum chan_state { CH_NEW, CH_OPENING, CH_OPEN, CH_CLOSING };
enum op { OP_NONE, OP_OPEN, OP_READ, OP_WRITE, OP_EOF, OP_CLOSE };

struct chan {
	int fd; /* the pump's end of the socketpair; -1 once closed */
	LIBSSH2_CHANNEL *ch;
	enum chan_state state;
	bool local_eof;  /* the local side will send no more */
	bool local_gone; /* the local side closed (or write failed) */
	bool eof_sent, remote_eof, shut_local;
	size_t up_off, up_len, down_off, down_len;
	char up[CHAN_BUF];   /* local → channel */
	char down[CHAN_BUF]; /* channel → local */
};

struct ssh_pump {
	struct ssh_conn *c;
	char *rhost;
	int rport;
	int keepalive_s;
	struct chan *chans[MAX_STREAMS];
	int n;
	struct chan *opening; /* the one open in progress */
	struct chan *stuck;   /* the call that must be repeated first */
	enum op stuck_op;
	size_t stuck_len;
	int64_t last_rx_ms, last_move_ms, last_ka_ms;
	int fatal; /* a session error: the connection is dead */
	char fatal_msg[256];
};

struct ssh_pump *ssh_pump_new(struct ssh_conn *c, const char *remote_host,
                              int remote_port, int keepalive_s)
{
	struct ssh_pump *p = xcalloc(1, sizeof(*p));

	p->c = c;
	p->rhost = xstrdup(remote_host);
	p->rport = remote_port;
	p->keepalive_s = keepalive_s;
	p->last_rx_ms = p->last_move_ms = p->last_ka_ms = now_mono_ms();
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

/* Channel-level failures end one stream; anything else ends the session. */
static bool chan_error(int rc)
{
	return (rc <= LIBSSH2_ERROR_CHANNEL_OUTOFORDER &&
	        rc >= LIBSSH2_ERROR_CHANNEL_EOF_SENT) ||
	       rc == LIBSSH2_ERROR_CHANNEL_WINDOW_FULL ||
	       rc == LIBSSH2_ERROR_BAD_USE || rc == LIBSSH2_ERROR_INVAL;
}

/* Note an EAGAIN: a call that left a packet half-sent is stuck. */
static void on_eagain(struct ssh_pump *p, struct chan *ch, enum op op,
                      size_t len)
{
	if (libssh2_session_block_directions(p->c->session) &
	    LIBSSH2_SESSION_BLOCK_OUTBOUND) {
		p->stuck = ch;
		p->stuck_op = op;
		p->stuck_len = len;
	}
}

/* A libssh2 call on ch failed with rc (not EAGAIN). */
static void on_error(struct ssh_pump *p, struct chan *ch, int rc,
                     const char *what)
{
	const char *msg = ssh_conn_errmsg(p->c->session);

	if (!chan_error(rc) && !p->fatal) {
		p->fatal = rc;
		snprintf(p->fatal_msg, sizeof(p->fatal_msg), "%s: %s (%d)",
		         what, msg, rc);
	}
	log_debug("ssh tunnel: stream fd=%d: %s: %s (%d)", ch->fd, what, msg,
	          rc);
	ch->local_gone = true;
}

static void chan_close_local(struct chan *ch)
{
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

static bool try_open(struct ssh_pump *p, struct chan *ch)
{
	LIBSSH2_CHANNEL *c;
	int rc;

	c = libssh2_channel_direct_tcpip_ex(p->c->session, p->rhost, p->rport,
	                                    "127.0.0.1", 0);
	if (c != NULL) {
		ch->ch = c;
		ch->state = CH_OPEN;
		p->opening = NULL;
		return true;
	}
	rc = libssh2_session_last_errno(p->c->session);
	if (rc == LIBSSH2_ERROR_EAGAIN) {
		p->opening = ch;
		ch->state = CH_OPENING;
		on_eagain(p, ch, OP_OPEN, 0);
		return false;
	}
	p->opening = NULL;
	log_warn("ssh tunnel: cannot open a channel to %s:%d on the far side: "
	         "%s",
	         p->rhost, p->rport, ssh_conn_errmsg(p->c->session));
	if (rc == LIBSSH2_ERROR_CHANNEL_FAILURE)
		rc = LIBSSH2_ERROR_CHANNEL_UNKNOWN; /* refused: not fatal */
	on_error(p, ch, rc, "channel open");
	ch->state = CH_CLOSING;
	return true;
}

static bool chan_read(struct ssh_pump *p, struct chan *ch, size_t len)
{
	ssize_t n;

	n = libssh2_channel_read(ch->ch, ch->down + ch->down_len, len);
	if (n > 0) {
		ch->down_len += (size_t)n;
		p->last_rx_ms = now_mono_ms();
		return true;
	}
	if (n == LIBSSH2_ERROR_EAGAIN) {
		on_eagain(p, ch, OP_READ, len);
		return false;
	}
	if (n == 0 || libssh2_channel_eof(ch->ch)) {
		ch->remote_eof = true;
		return true;
	}
	on_error(p, ch, (int)n, "channel read");
	return true;
}

static bool chan_write(struct ssh_pump *p, struct chan *ch, size_t len)
{
	ssize_t n;

	n = libssh2_channel_write(ch->ch, ch->up + ch->up_off, len);
	if (n > 0) {
		ch->up_off += (size_t)n;
		if (ch->up_off == ch->up_len)
			ch->up_off = ch->up_len = 0;
		return true;
	}
	if (n == LIBSSH2_ERROR_EAGAIN || n == 0) {
		on_eagain(p, ch, OP_WRITE, len);
		return false;
	}
	on_error(p, ch, (int)n, "channel write");
	return true;
}

static bool chan_eof(struct ssh_pump *p, struct chan *ch)
{
	int rc = libssh2_channel_send_eof(ch->ch);

	if (rc == LIBSSH2_ERROR_EAGAIN) {
		on_eagain(p, ch, OP_EOF, 0);
		return false;
	}
	if (rc < 0)
		on_error(p, ch, rc, "channel eof");
	ch->eof_sent = true;
	return true;
}

/* Close and free the channel; true when that happened now. */
static bool chan_free(struct ssh_pump *p, struct chan *ch)
{
	int rc;

	if (ch->ch == NULL)
		return false;
	rc = libssh2_channel_free(ch->ch);
	if (rc == LIBSSH2_ERROR_EAGAIN) {
		on_eagain(p, ch, OP_CLOSE, 0);
		return false;
	}
	ch->ch = NULL;
	return true;
}

/* Repeat the stuck call; true when it completed. */
static bool retry_stuck(struct ssh_pump *p)
{
	struct chan *ch = p->stuck;
	enum op op = p->stuck_op;

	p->stuck = NULL;
	switch (op) {
	case OP_OPEN:
		try_open(p, ch);
		break;
	case OP_READ:
		chan_read(p, ch, p->stuck_len);
		break;
	case OP_WRITE:
		chan_write(p, ch, p->stuck_len);
		break;
	case OP_EOF:
		chan_eof(p, ch);
		break;
	case OP_CLOSE:
		if (chan_free(p, ch))
			ch->state = CH_CLOSING;
		break;
	default:
		break;
	}
	return p->stuck == NULL;
}

/* Slide buffered bytes to the front, unless a stuck call points into them. */
static void chan_compact(struct ssh_pump *p, struct chan *ch)
{
	if (p->stuck == ch)
		return;
	if (ch->up_off > 0) {
		memmove(ch->up, ch->up + ch->up_off, ch->up_len - ch->up_off);
		ch->up_len -= ch->up_off;
		ch->up_off = 0;
	}
	if (ch->down_off > 0) {
		memmove(ch->down, ch->down + ch->down_off,
		        ch->down_len - ch->down_off);
		ch->down_len -= ch->down_off;
		ch->down_off = 0;
	}
}

/* Move bytes between the local socket and the stream's buffers. */
static bool local_io(struct ssh_pump *p, struct chan *ch)
{
	bool moved = false;
	ssize_t n;

	if (ch->fd < 0 || ch->local_gone)
		return false;
	if (ch->down_len > ch->down_off) {
		n = send(ch->fd, ch->down + ch->down_off,
		         ch->down_len - ch->down_off,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			ch->down_off += (size_t)n;
			moved = true;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			ch->local_gone = true;
			return true;
		}
	}
	chan_compact(p, ch);
	if (!ch->local_eof && ch->up_len < CHAN_BUF) {
		n = recv(ch->fd, ch->up + ch->up_len, CHAN_BUF - ch->up_len,
		         MSG_DONTWAIT);
		if (n > 0) {
			ch->up_len += (size_t)n;
			moved = true;
		} else if (n == 0) {
			ch->local_eof = moved = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			ch->local_gone = moved = true;
		}
	}
	if (ch->remote_eof && ch->down_len == ch->down_off && !ch->shut_local) {
		shutdown(ch->fd, SHUT_WR);
		ch->shut_local = moved = true;
	}
	return moved;
}

/* Drive one open stream's channel calls. */
static bool chan_pump(struct ssh_pump *p, struct chan *ch)
{
	bool moved = false;

	if (ch->local_gone) {
		ch->state = CH_CLOSING;
		return true;
	}
	if (!ch->remote_eof && ch->down_len < CHAN_BUF) {
		moved |= chan_read(p, ch, CHAN_BUF - ch->down_len);
		if (p->stuck || p->fatal)
			return moved;
	}
	if (ch->up_len > ch->up_off) {
		moved |= chan_write(p, ch, ch->up_len - ch->up_off);
		if (p->stuck || p->fatal)
			return moved;
	}
	if (ch->local_eof && ch->up_len == ch->up_off && !ch->eof_sent)
		moved |= chan_eof(p, ch);
	if (ch->eof_sent && ch->remote_eof && ch->down_len == ch->down_off) {
		ch->state = CH_CLOSING;
		moved = true;
	}
	return moved;
}

/* One pass over the streams; true when anything moved. */
static bool pump_round(struct ssh_pump *p)
{
	bool moved = false;
	int i;

	if (p->stuck != NULL)
		moved = retry_stuck(p);
	for (i = 0; i < p->n && !p->fatal; i++) {
		struct chan *ch = p->chans[i];

		moved |= local_io(p, ch);
		if (p->stuck != NULL)
			continue;
		if ((ch->state == CH_NEW && p->opening == NULL) ||
		    (ch->state == CH_OPENING && p->opening == ch))
			moved |= try_open(p, ch);
		else if (ch->state == CH_OPEN)
			moved |= chan_pump(p, ch);
		if (ch->state == CH_CLOSING && p->stuck == NULL) {
			chan_close_local(ch);
			moved |= chan_free(p, ch);
		}
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

/* Send a keepalive when the session has been quiet for a second: then the
 * socket's send buffer is empty and the small packet cannot be half-sent
 * (libssh2 would report a half-sent keepalive as sent, and the next call
 * would be fooled: see the top of this file). */
static void keepalive(struct ssh_pump *p, int *next_ms)
{
	int64_t now = now_mono_ms(), ka = (int64_t)p->keepalive_s * 1000;
	struct pollfd pfd = {.fd = p->c->sock, .events = POLLOUT};
	int next_s = 0;

	*next_ms = 1000;
	if (p->keepalive_s <= 0 || p->stuck != NULL)
		return;
	if (now - p->last_ka_ms < ka) {
		*next_ms = (int)(ka - (now - p->last_ka_ms));
		return;
	}
	if (now - p->last_move_ms < 1000 || poll(&pfd, 1, 0) != 1)
		return;
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
	if (next_ms < timeout_ms)
		timeout_ms = next_ms;
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
	while (rounds++ < MAX_ROUNDS && !p->fatal && pump_round(p))
		p->last_move_ms = now_mono_ms();
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
	for (i = 0; i < p->n; i++) {
		chan_close_local(p->chans[i]);
		free(p->chans[i]);
	}
	free(p->rhost);
	free(p);
}
