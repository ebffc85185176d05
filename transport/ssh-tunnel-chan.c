/* ssh-tunnel-chan.c: the libssh2 calls of one stream of the tunnel
 * (direct-tcpip open, read, write, eof, close) and the moves between its
 * local socket and its two bounded buffers.  See ssh-tunnel-pump.c for the
 * one-call-at-a-time rule ("stuck") these functions keep. */
#include "transport/ssh-tunnel-pump.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

void ssh_chan_close_local(struct chan *ch)
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
bool ssh_chan_retry_stuck(struct ssh_pump *p)
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
bool ssh_chan_local_io(struct ssh_pump *p, struct chan *ch)
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

bool ssh_chan_step(struct ssh_pump *p, struct chan *ch)
{
	bool moved = false;

	if ((ch->state == CH_NEW && p->opening == NULL) ||
	    (ch->state == CH_OPENING && p->opening == ch))
		moved |= try_open(p, ch);
	else if (ch->state == CH_OPEN)
		moved |= chan_pump(p, ch);
	if (ch->state == CH_CLOSING && p->stuck == NULL) {
		ssh_chan_close_local(ch);
		moved |= chan_free(p, ch);
	}
	return moved;
}
