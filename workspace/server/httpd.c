/* httpd.c: the two libmicrohttpd daemons: TLS on listen:port and plain
 * HTTP on 127.0.0.1:plain_port, both epoll with a thread pool and
 * suspend/resume for long-polls; graceful stop. */
#include "workspace/server/http.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoding of paths and arguments; "%00" becomes 0x01 rather than
 * a NUL that would cut the string short, so it fails every name check. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	char *w = s;
	const char *r = s;

	while (*r != '\0') {
		int hi, lo;
		if (r[0] == '%' && (hi = hexval(r[1])) >= 0 &&
		    (lo = hexval(r[2])) >= 0) {
			char v = (char)(hi * 16 + lo);
			*w++ = v == '\0' ? '\x01' : v;
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static struct MHD_Daemon *start_daemon(struct ws *ws, int port, bool tls,
                                       const char *cert, const char *key)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD |
	                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const char *addr = tls ? ws->conf.listen : "127.0.0.1";

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return NULL;
	if (tls)
		flags |= MHD_USE_TLS;
	return MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, http_on_request, ws,
	    MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned)ws->conf.threads, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)HTTPD_IDLE_S, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)ws->conf.max_connections,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ws->conf.conn_memory,
	    MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, ws,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
	    MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
	    tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
	    MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
}

static int bound_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *i =
	    MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	return i ? i->port : -1;
}

int httpd_start(struct ws *ws, struct err *e)
{
	char *cert = NULL, *key = NULL, *cp = config_path(ws, ws->conf.cert),
	     *kp = config_path(ws, ws->conf.key);
	size_t n;
	int r;

	if (ws->conf.conn_memory < 4096 || ws->conf.conn_memory > (1 << 20)) {
		r = err_set(e, TERR_INVAL,
		            "conn_memory: %lld bytes is outside 4K-1M",
		            (long long)ws->conf.conn_memory);
		goto out;
	}
	if ((r = file_read_all(cp, 1 << 20, &cert, &n, e)) < 0 ||
	    (r = file_read_all(kp, 1 << 20, &key, &n, e)) < 0)
		goto out;
	ws->tls_d = start_daemon(ws, (int)ws->conf.port, true, cert, key);
	if (ws->tls_d == NULL) {
		r = err_set(e, TERR_IO, "cannot listen with TLS on %s:%d",
		            ws->conf.listen, (int)ws->conf.port);
		goto out;
	}
	ws->port = bound_port(ws->tls_d);
	if (ws->conf.plain_port >= 0) {
		ws->plain_d = start_daemon(ws, (int)ws->conf.plain_port, false,
		                           NULL, NULL);
		if (ws->plain_d == NULL) {
			r = err_set(e, TERR_IO, "cannot listen on 127.0.0.1:%d",
			            (int)ws->conf.plain_port);
			goto out;
		}
		ws->plain_port = bound_port(ws->plain_d);
	}
	r = 0;
out:
	freezero_str(key);
	free(cert);
	free(cp);
	free(kp);
	return r;
}

/* Connections still open on d. */
static unsigned open_conns(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *i =
	    d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS)
	      : NULL;
	return i ? i->num_connections : 0;
}

/* Stop accepting, let requests in flight (resumed long-polls) answer for
 * up to two seconds, then stop. */
void httpd_stop(struct ws *ws)
{
	int64_t until = now_mono_ms() + 2000;

	if (ws->tls_d != NULL)
		MHD_quiesce_daemon(ws->tls_d);
	if (ws->plain_d != NULL)
		MHD_quiesce_daemon(ws->plain_d);
	while (open_conns(ws->tls_d) + open_conns(ws->plain_d) > 0 &&
	       now_mono_ms() < until)
		usleep(20000);
	if (ws->tls_d != NULL)
		MHD_stop_daemon(ws->tls_d);
	if (ws->plain_d != NULL)
		MHD_stop_daemon(ws->plain_d);
	ws->tls_d = ws->plain_d = NULL;
}
