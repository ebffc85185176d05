/* ssh-tunnel.h: an outbound SSH connection (libssh2) that carries TCP
 * streams to the workspace's loopback HTTP listener on the far side
 * (direct-tcpip channels).
 *
 * The HTTP client (libcurl) asks for a stream with ssh_tunnel_connect() from
 * its CURLOPT_OPENSOCKETFUNCTION: it gets one end of a socketpair whose other
 * end the tunnel pumps to and from a new channel, so one HTTP client serves
 * both transports and several requests run at once on separate channels. */
#ifndef TETHER_SSH_TUNNEL_H
#define TETHER_SSH_TUNNEL_H

#include <stdbool.h>

struct err;
struct ssh_tunnel;

struct ssh_tunnel_opts {
	const char *url;                /* ssh://user@host[:port] */
	const char *known_hosts;        /* OpenSSH known_hosts file */
	const char *pinned_fingerprint; /* "SHA256:..." accepted when unknown */
	const char *key_file;           /* private key (ed25519 or RSA) */
	const char *passphrase_file;    /* or NULL */
	const char *remote_host; /* direct-tcpip target, default 127.0.0.1 */
	int remote_port;         /* workspace plain HTTP port, default 8080 */
	int keepalive_s;         /* 0 = libssh2 default off; default 15 */
	int connect_timeout_ms;
};

/* Connect, verify the host key (unknown: refuse unless pinned; changed:
 * always refuse, naming both fingerprints), authenticate with the key. */
int ssh_tunnel_open(const struct ssh_tunnel_opts *o, struct ssh_tunnel **out,
                    struct err *e);
/* A new stream to remote_host:remote_port; *fd is a connected socket the
 * caller owns.  Thread-safe. */
int ssh_tunnel_connect(struct ssh_tunnel *t, int *fd, struct err *e);
/* False once the SSH connection died (the caller reopens with backoff). */
bool ssh_tunnel_alive(struct ssh_tunnel *t);
void ssh_tunnel_close(struct ssh_tunnel *t);

#endif
