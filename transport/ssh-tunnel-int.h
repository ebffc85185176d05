/* ssh-tunnel-int.h: the parts of the SSH transport shared between its own
 * files and `tether attach`: URL parsing, one verified and authenticated
 * libssh2 session (ssh-tunnel-conn.c), host key checks
 * (ssh-tunnel-hostkey.c) and the channel pump (ssh-tunnel-pump.c).
 * Not a public interface: the agent uses transport/ssh-tunnel.h. */
#ifndef TETHER_SSH_TUNNEL_INT_H
#define TETHER_SSH_TUNNEL_INT_H

#include "transport/ssh-tunnel.h"

#include <libssh2.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/* "SHA256:" + 43 base64 characters, NUL-terminated. */
#define SSH_FP_LEN 64

struct ssh_target {
	char *user;
	char *host;
	int port;
};

/* Parse ssh://user@host[:port][/] (host may be [v6]); port defaults to 22. */
int ssh_url_parse(const char *url, struct ssh_target *t, struct err *e);
void ssh_target_free(struct ssh_target *t);

/* One TCP connection carrying a libssh2 session in non-blocking mode whose
 * host key was verified and whose user authenticated. */
struct ssh_conn {
	int sock;
	LIBSSH2_SESSION *session;
	struct ssh_target target;
	char fingerprint[SSH_FP_LEN]; /* of the server's host key */
};

/* Connect, handshake, verify the host key, then (only then) authenticate.
 * o->connect_timeout_ms bounds the whole sequence (default 15 s). */
int ssh_conn_open(const struct ssh_tunnel_opts *o, struct ssh_conn **out,
                  struct err *e);
/* Say goodbye (bounded wait) and free.  Accepts NULL. */
void ssh_conn_close(struct ssh_conn *c);
/* Wait until the socket is ready in the directions libssh2 is blocked on,
 * or until deadline_ms (monotonic); TERR_TIMEOUT then. */
int ssh_conn_wait(struct ssh_conn *c, int64_t deadline_ms, struct err *e);
/* The session's last error text ("" when none). */
const char *ssh_conn_errmsg(LIBSSH2_SESSION *s);

/* SHA256 fingerprint of a raw key blob, as OpenSSH prints it. */
void ssh_fingerprint(const unsigned char *blob, size_t len,
                     char out[SSH_FP_LEN]);
/* Host key algorithms to offer, the ones known_hosts lists for host:port
 * first (so a known ed25519 key is not met by an unknown RSA one).
 * *out is NULL when nothing is known (libssh2's default order). */
int ssh_hostkey_prefs(const char *known_hosts, const struct ssh_target *t,
                      char **out, struct err *e);
/* Check the session's host key: known → ok; changed → refuse always;
 * unknown → ok only when pinned matches.  Fills fp (the presented key). */
int ssh_hostkey_verify(LIBSSH2_SESSION *s, const struct ssh_tunnel_opts *o,
                       const struct ssh_target *t, char fp[SSH_FP_LEN],
                       struct err *e);

/* The pump: moves bytes between local socketpair ends and direct-tcpip
 * channels of one session; run only by the tunnel's thread. */
struct ssh_pump;

struct ssh_pump *ssh_pump_new(struct ssh_conn *c, const char *remote_host,
                              int remote_port, int keepalive_s);
/* Take the pump's end of a new stream (opened on the next step). */
void ssh_pump_add(struct ssh_pump *p, int fd);
/* One round: poll (at most timeout_ms, -1: as long as nothing is due;
 * also waking when wake_fd or
 * listen_fd is readable; wake_fd is drained), then move what can move.
 * Returns 0, or a negative TERR_* once the SSH connection is dead. */
int ssh_pump_step(struct ssh_pump *p, int wake_fd, int listen_fd,
                  int timeout_ms, struct err *e);
/* Streams open or waiting to open. */
int ssh_pump_count(const struct ssh_pump *p);
/* Close every stream's local end (their readers see EOF) and free. */
void ssh_pump_free(struct ssh_pump *p);

#endif
