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
#include <stddef.h>

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
	int keepalive_s;         /* 0: default 15; negative: off */
	int connect_timeout_ms;
};

/* Connect, verify the host key (unknown: refuse unless pinned; changed:
 * always refuse, naming both fingerprints), authenticate with the key. */
int ssh_tunnel_open(const struct ssh_tunnel_opts *o, struct ssh_tunnel **out,
                    struct err *e);
/* Like ssh_tunnel_open, but returns at once: the connection is made in
 * the tunnel's thread, streams asked for meanwhile wait for it (and fail
 * if it fails).  For a daemon that must start while the server is down. */
int ssh_tunnel_start(const struct ssh_tunnel_opts *o, struct ssh_tunnel **out,
                     struct err *e);
/* A new stream to remote_host:remote_port; *fd is a connected socket the
 * caller owns.  Thread-safe and never blocks: the channel opens in the
 * tunnel's thread (bytes written meanwhile wait; if the far side refuses,
 * the stream is closed).  While the tunnel is down it fails at once with
 * the reason (TERR_NET) and starts a reconnect, so the caller's retry
 * schedule paces reconnects. */
int ssh_tunnel_connect(struct ssh_tunnel *t, int *fd, struct err *e);
/* For HTTP clients that connect() the socket themselves (libcurl 7.88
 * ignores CURL_SOCKOPT_ALREADY_CONNECTED and calls connect() on what its
 * OPENSOCKETFUNCTION returned): a TCP socket bound to a loopback port that
 * the tunnel admits once; connected (do_connect) or to be connected by the
 * caller to 127.0.0.1:ssh_tunnel_port().  The tunnel's loopback listener
 * turns away connections from ports it did not hand out, so other local
 * users cannot ride the tunnel.  Fails like ssh_tunnel_connect. */
int ssh_tunnel_socket(struct ssh_tunnel *t, bool do_connect, int *fd,
                      struct err *e);
/* The loopback port of that listener. */
int ssh_tunnel_port(const struct ssh_tunnel *t);
/* Fill an http.h socket provider and base URL ("http://127.0.0.1:PORT")
 * so that an HTTP client's connections are streams of t (picks
 * ssh_tunnel_socket's mode for the libcurl in use). */
struct http_socket_provider;
int ssh_tunnel_http(struct ssh_tunnel *t, char *base_url, size_t n,
                    struct http_socket_provider *p);
/* False once the SSH connection died (the caller reopens with backoff). */
bool ssh_tunnel_alive(struct ssh_tunnel *t);
void ssh_tunnel_close(struct ssh_tunnel *t);

#endif
