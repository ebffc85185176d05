/* config.c: workspace.conf, one table row per key (docs/workspace.md). */
#include "workspace/server/ws.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define K(name, type, def, field, min, max, help)                              \
	{                                                                      \
		name, type, def, offsetof(struct ws_conf, field), min, max,    \
		    help                                                       \
	}

const struct conf_key ws_conf_table[] = {
    K("listen", CONF_STR, "127.0.0.1", listen, 0, 0,
      "IPv4 address of the TLS listener"),
    K("port", CONF_INT, "8443", port, 0, 65535,
      "TLS port (0: any free port, written to ports.json)"),
    K("plain_port", CONF_INT, "-1", plain_port, -1, 65535,
      "loopback-only plain HTTP port for the SSH transport (-1: off, 0: "
      "any)"),
    K("cert", CONF_STR, "tls.crt", cert, 0, 0,
      "TLS certificate (PEM), relative to the workspace directory"),
    K("key", CONF_STR, "tls.key", key, 0, 0, "TLS private key (PEM)"),
    K("db", CONF_STR, "workspace.db", db, 0, 0, "SQLite database"),
    K("threads", CONF_INT, "4", threads, 1, 256, "HTTP thread pool size"),
    K("poll", CONF_DURATION, "30s", poll_ms, 0, 0,
      "poll period suggested to agents"),
    K("poll_max_wait", CONF_DURATION, "60s", poll_max_wait_ms, 0, 0,
      "longest a lease or log long-poll is held"),
    K("lease_ttl", CONF_DURATION, "10m", lease_ttl_ms, 0, 0,
      "lease of an attempt, renewed by each poll of its agent"),
    K("lost_grace", CONF_DURATION, "60s", lost_grace_ms, 0, 0,
      "added to lease_ttl before an attempt is declared lost"),
    K("lost_margin", CONF_DURATION, "30s", lost_margin_ms, 0, 0,
      "safety margin added after lost_grace"),
    K("gang_start_timeout", CONF_DURATION, "60s", gang_start_timeout_ms, 0, 0,
      "a multi-node job's ranks not all accepted by then are cancelled and "
      "the job waits again"),
    K("max_body", CONF_SIZE, "1M", max_body, 0, 0, "largest JSON body"),
    K("max_log_chunk", CONF_SIZE, "8M", max_log_chunk, 0, 0,
      "largest log append"),
    K("max_output", CONF_SIZE, "4G", max_output, 0, 0, "largest output file"),
    K("max_snapshot", CONF_SIZE, "256M", max_snapshot, 0, 0,
      "largest source snapshot"),
    K("log_retention", CONF_DURATION, "30d", log_retention_ms, 0, 0,
      "logs of jobs that ended longer ago are deleted"),
    K("output_retention", CONF_DURATION, "30d", output_retention_ms, 0, 0,
      "outputs of jobs that ended longer ago are deleted"),
    K("max_connections", CONF_INT, "512", max_connections, 8, 100000,
      "simultaneous connections per listener"),
    K("conn_memory", CONF_SIZE, "16K", conn_memory, 0, 0,
      "memory per connection: request headers and read buffer (4K-1M)"),
    K("log_level", CONF_STR, "info", log_level, 0, 0,
      "error, warn, info or debug"),
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

char *config_path(struct ws *ws, const char *name)
{
	if (name[0] == '/')
		return xstrdup(name);
	return xasprintf("%s/%s", ws->dir, name);
}

static int load_admin(struct ws *ws, struct err *e)
{
	char *path = config_path(ws, "admin.token"), *tok = NULL;
	size_t n;
	int r;

	if ((r = file_read_all(path, 4096, &tok, &n, e)) < 0)
		goto out;
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
		tok[--n] = '\0';
	if (n < 16) {
		r = err_set(e, TERR_INVAL, "%s: admin token too short", path);
		goto out;
	}
	auth_hash(tok, ws->admin_hash);
out:
	freezero_str(tok);
	free(path);
	return r;
}

int config_load(struct ws *ws, const char *dir, struct err *e)
{
	char *path;
	enum log_level lvl;
	int r;

	ws->dir = xstrdup(dir);
	if ((r = conf_defaults(ws_conf_table, &ws->conf, e)) < 0)
		return r;
	path = config_path(ws, "workspace.conf");
	r = conf_load_file(ws_conf_table, &ws->conf, path, e);
	if (r == TERR_NOTFOUND)
		r = err_set(e, r,
		            "%s not found: run 'tether-workspace init --dir "
		            "%s' first",
		            path, dir);
	free(path);
	if (r < 0)
		return r;
	if ((r = conf_load_env(ws_conf_table, &ws->conf, "TETHER_WS_", e)) < 0)
		return r;
	if (log_parse_level(ws->conf.log_level, &lvl) == 0)
		log_set_level(lvl);
	return load_admin(ws, e);
}
