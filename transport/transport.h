/* transport.h: the agent's calls to its workspace (docs/protocol.md), one
 * ops struct per transport (https, ssh).
 *
 * Every call is asynchronous: it starts a request on the caller's event
 * loop (struct http_loop_hooks) and completes through a tp_done_fn with a
 * struct tp_reply.  The loop feeds fd readiness and timer expiry back via
 * ops->on_fd / ops->on_timer.  A transport keeps no state of the agent: the
 * caller decides what to retry and when. */
#ifndef TETHER_TRANSPORT_H
#define TETHER_TRANSPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "transport/http.h"

struct transport;

struct transport_config {
	const char *url; /* https://host:port, http://127.0.0.1:port, ssh:// */
	const char *ca_file; /* https: PEM bundle or NULL */
	const char *proxy, *no_proxy;
	int64_t connect_timeout_ms;
	const char *user_agent;
	/* ssh transport only (see transport/ssh-tunnel.h) */
	const char *ssh_known_hosts, *ssh_key_file, *ssh_fingerprint;
	int ssh_remote_port;
	const char *ssh_passphrase_file; /* key passphrase, or NULL */
	int ssh_keepalive_s;             /* 0: default 15; negative: off */
};

/* The outcome of one call.  json is the parsed reply body (borrowed, valid
 * during the callback) or NULL.  code: 0 for 2xx; TERR_AUTH (401/403),
 * TERR_CONFLICT (409), TERR_GAP (416), TERR_NOTFOUND (404), TERR_INVAL
 * (400), TERR_TOOBIG (413), TERR_BUSY (429, 503), TERR_PROTO (426, bad
 * JSON), TERR_FAIL (other 5xx), TERR_NET / TERR_TIMEOUT (no reply). */
struct tp_reply {
	int code;
	long status;
	json_t *json;
	int64_t retry_after_ms; /* -1 when absent */
	struct err err;
};

typedef void (*tp_done_fn)(void *arg, const struct tp_reply *rep);

struct tp_call; /* a call in flight */

struct transport_ops {
	const char *name; /* "https", "ssh" */
	int (*open)(const struct transport_config *c,
	            const struct http_loop_hooks *h, struct transport **out,
	            struct err *e);
	void (*close)(struct transport *t);
	/* The bearer token for the next calls (registration token for
	 * register, agent secret for the rest).  Copied. */
	void (*set_token)(struct transport *t, const char *token);
	/* POST /agents/register with the JSON body. */
	int (*register_agent)(struct transport *t, json_t *body,
	                      tp_done_fn done, void *arg, struct tp_call **out,
	                      struct err *e);
	/* POST /agents/lease; the request is held up to wait_s seconds. */
	int (*lease)(struct transport *t, json_t *body, int64_t wait_s,
	             tp_done_fn done, void *arg, struct tp_call **out,
	             struct err *e);
	/* POST /attempts/J/A/log?offset=O with len bytes of fd from O. */
	int (*log_append)(struct transport *t, const char *job, int64_t attempt,
	                  int fd, int64_t offset, int64_t len, tp_done_fn done,
	                  void *arg, struct tp_call **out, struct err *e);
	/* POST /attempts/J/A/events with {"events": [...]}. */
	int (*events)(struct transport *t, const char *job, int64_t attempt,
	              json_t *body, tp_done_fn done, void *arg,
	              struct tp_call **out, struct err *e);
	/* PUT /attempts/J/A/outputs/PATH from fd (size bytes). */
	int (*output_put)(struct transport *t, const char *job, int64_t attempt,
	                  const char *path, int fd, int64_t size,
	                  const char *sha256, tp_done_fn done, void *arg,
	                  struct tp_call **out, struct err *e);
	/* PUT /attempts/J/A/checkpoint from fd (size bytes, sha256); NULL in
	 * a transport that does not set it: use transport_https's (the ssh
	 * transport shares its HTTP client). */
	int (*checkpoint_put)(struct transport *t, const char *job,
	                      int64_t attempt, int fd, int64_t size,
	                      const char *sha256, tp_done_fn done, void *arg,
	                      struct tp_call **out, struct err *e);
	/* GET /snapshots/ID into fd. */
	int (*snapshot_get)(struct transport *t, const char *id, int fd,
	                    tp_done_fn done, void *arg, struct tp_call **out,
	                    struct err *e);
	/* POST /agents/rotate. */
	int (*rotate)(struct transport *t, tp_done_fn done, void *arg,
	              struct tp_call **out, struct err *e);
	/* POST /attempts/J/A/handback. */
	int (*handback)(struct transport *t, const char *job, int64_t attempt,
	                tp_done_fn done, void *arg, struct tp_call **out,
	                struct err *e);
	/* Abort a call; its callback is not called. */
	void (*cancel)(struct transport *t, struct tp_call *call);
	/* Event loop entry points (see http.h). */
	void (*on_fd)(struct transport *t, int fd, int what);
	void (*on_timer)(struct transport *t);
};

extern const struct transport_ops transport_https;
extern const struct transport_ops transport_ssh; /* transport-ssh.c */

/* The ops for a URL's scheme (https:// and http:// -> https; ssh://). */
const struct transport_ops *transport_for_url(const char *url, struct err *e);

/* For transports built on the HTTP client (transport-https.c): open the
 * shared implementation with an explicit base URL and socket provider.
 * transport-ssh.c uses this with "http://127.0.0.1:PORT" and a provider
 * returning ssh_tunnel_connect() streams, then reuses every call of
 * transport_https. */
int transport_http_open(const struct transport_config *c,
                        const struct http_loop_hooks *h, const char *base_url,
                        const struct http_socket_provider *provider,
                        struct transport **out, struct err *e);
/* Private data a transport built on transport_http_open may attach (the
 * ssh tunnel) with a destructor called by close. */
void transport_set_private(struct transport *t, void *priv,
                           void (*free_fn)(void *));
void *transport_get_private(struct transport *t);

#endif
