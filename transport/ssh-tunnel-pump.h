/* ssh-tunnel-pump.h: the state the pump (ssh-tunnel-pump.c) and the
 * per-stream channel calls (ssh-tunnel-chan.c) share.  Private to them. */
#ifndef TETHER_SSH_TUNNEL_PUMP_H
#define TETHER_SSH_TUNNEL_PUMP_H

#include "transport/ssh-tunnel-int.h"

#include <stdbool.h>
#include <stdint.h>

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
	uint64_t rx_bytes; /* read from the socket by libssh2, ever */
	bool more;         /* work left when the last step stopped */
	int fatal;         /* a session error: the connection is dead */
	char fatal_msg[256];
};

/* ssh-tunnel-chan.c */
/* Repeat the stuck call first; true when it completed. */
bool ssh_chan_retry_stuck(struct ssh_pump *p);
/* Move bytes between a stream's local socket and its buffers. */
bool ssh_chan_local_io(struct ssh_pump *p, struct chan *ch);
/* Drive a stream's libssh2 calls (open, read, write, eof, close). */
bool ssh_chan_step(struct ssh_pump *p, struct chan *ch);
void ssh_chan_close_local(struct chan *ch);

#endif
