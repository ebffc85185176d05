/* transport-ssh.c: the agent's workspace calls over an SSH tunnel.
 *
 * The ssh transport is the https transport's HTTP client (transport/http.c,
 * every call of transport_https) with a different source of sockets: each
 * HTTP connection is a stream of the tunnel (transport/ssh-tunnel.c) to the
 * workspace's loopback plain-HTTP listener on the far side.  Same protocol,
 * same requests, same retry policy (the agent's backoff): a request that
 * finds the tunnel down fails at once with the reason and starts a
 * reconnect, so reconnects follow the agent's backoff as HTTPS retries do.
 *
 * The bearer token is only ever sent inside HTTP requests on channels of a
 * session whose host key was verified and whose key was accepted. */
#include "transport/transport.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/ssh-tunnel.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libcurl 7.88.x calls connect() on the socket its OPENSOCKETFUNCTION
 * returned even when SOCKOPTFUNCTION says it is already connected (fixed
 * in 8.0.0): give those versions a socket to connect themselves. */
static bool curl_connects_anyway(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	return v->version_num >= 0x075800 && v->version_num < 0x080000;
}

static int ssh_provider_open(void *ctx, int *fd, struct err *e)
{
	static int connect_self = -1;

	if (connect_self < 0)
		connect_self = !curl_connects_anyway();
	return ssh_tunnel_socket(ctx, connect_self, fd, e);
}

int ssh_tunnel_http(struct ssh_tunnel *t, char *base_url, size_t n,
                    struct http_socket_provider *p)
{
	p->ctx = t;
	p->open = ssh_provider_open;
	snprintf(base_url, n, "http://127.0.0.1:%d", ssh_tunnel_port(t));
	return 0;
}

static void tunnel_free(void *priv)
{
	ssh_tunnel_close(priv);
}

static int ssh_open(const struct transport_config *c,
                    const struct http_loop_hooks *h, struct transport **out,
                    struct err *e)
{
	struct ssh_tunnel_opts o = {.url = c->url,
	                            .known_hosts = c->ssh_known_hosts,
	                            .pinned_fingerprint = c->ssh_fingerprint,
	                            .key_file = c->ssh_key_file,
	                            .passphrase_file = c->ssh_passphrase_file,
	                            .remote_port = c->ssh_remote_port,
	                            .keepalive_s = c->ssh_keepalive_s,
	                            .connect_timeout_ms =
	                                (int)c->connect_timeout_ms};
	struct http_socket_provider prov;
	struct ssh_tunnel *t = NULL;
	char base[64];
	int r;

	if (o.key_file == NULL)
		return err_set(e, TERR_INVAL,
		               "workspace %s: ssh transport needs a key file "
		               "(ssh_key)",
		               c->url);
	if (o.known_hosts == NULL && o.pinned_fingerprint == NULL)
		return err_set(
		    e, TERR_INVAL,
		    "workspace %s: ssh transport needs a known_hosts "
		    "file (ssh_known_hosts) or a pinned host key "
		    "fingerprint (ssh_fingerprint)",
		    c->url);
	/* Connect now, so a wrong host key or key is reported at start; a
	 * server that is merely unreachable is retried like HTTPS. */
	r = ssh_tunnel_open(&o, &t, e);
	if (r == TERR_NET || r == TERR_TIMEOUT) {
		log_warn("%s; will retry", e->msg);
		err_clear(e);
		r = ssh_tunnel_start(&o, &t, e);
	}
	if (r < 0)
		return r;
	ssh_tunnel_http(t, base, sizeof(base), &prov);
	if ((r = transport_http_open(c, h, base, &prov, out, e)) < 0) {
		ssh_tunnel_close(t);
		return r;
	}
	transport_set_private(*out, t, tunnel_free);
	return 0;
}

/* Every call but open is the https transport's own (same HTTP client). */
#define B (&transport_https)

static void ssh_close(struct transport *t)
{
	B->close(t);
}

static void ssh_set_token(struct transport *t, const char *token)
{
	B->set_token(t, token);
}

static int ssh_register(struct transport *t, json_t *body, tp_done_fn done,
                        void *arg, struct tp_call **out, struct err *e)
{
	return B->register_agent(t, body, done, arg, out, e);
}

static int ssh_lease(struct transport *t, json_t *body, int64_t wait_s,
                     tp_done_fn done, void *arg, struct tp_call **out,
                     struct err *e)
{
	return B->lease(t, body, wait_s, done, arg, out, e);
}

static int ssh_log_append(struct transport *t, const char *job, int64_t attempt,
                          int fd, int64_t offset, int64_t len, tp_done_fn done,
                          void *arg, struct tp_call **out, struct err *e)
{
	return B->log_append(t, job, attempt, fd, offset, len, done, arg, out,
	                     e);
}

static int ssh_events(struct transport *t, const char *job, int64_t attempt,
                      json_t *body, tp_done_fn done, void *arg,
                      struct tp_call **out, struct err *e)
{
	return B->events(t, job, attempt, body, done, arg, out, e);
}

static int ssh_output_put(struct transport *t, const char *job, int64_t attempt,
                          const char *path, int fd, int64_t size,
                          const char *sha256, tp_done_fn done, void *arg,
                          struct tp_call **out, struct err *e)
{
	return B->output_put(t, job, attempt, path, fd, size, sha256, done, arg,
	                     out, e);
}

static int ssh_snapshot_get(struct transport *t, const char *id, int fd,
                            tp_done_fn done, void *arg, struct tp_call **out,
                            struct err *e)
{
	return B->snapshot_get(t, id, fd, done, arg, out, e);
}

static int ssh_rotate(struct transport *t, tp_done_fn done, void *arg,
                      struct tp_call **out, struct err *e)
{
	return B->rotate(t, done, arg, out, e);
}

static int ssh_handback(struct transport *t, const char *job, int64_t attempt,
                        tp_done_fn done, void *arg, struct tp_call **out,
                        struct err *e)
{
	return B->handback(t, job, attempt, done, arg, out, e);
}

static void ssh_cancel(struct transport *t, struct tp_call *call)
{
	B->cancel(t, call);
}

static void ssh_on_fd(struct transport *t, int fd, int what)
{
	B->on_fd(t, fd, what);
}

static void ssh_on_timer(struct transport *t)
{
	B->on_timer(t);
}

const struct transport_ops transport_ssh = {
    .name = "ssh",
    .open = ssh_open,
    .close = ssh_close,
    .set_token = ssh_set_token,
    .register_agent = ssh_register,
    .lease = ssh_lease,
    .log_append = ssh_log_append,
    .events = ssh_events,
    .output_put = ssh_output_put,
    .snapshot_get = ssh_snapshot_get,
    .rotate = ssh_rotate,
    .handback = ssh_handback,
    .cancel = ssh_cancel,
    .on_fd = ssh_on_fd,
    .on_timer = ssh_on_timer,
};
