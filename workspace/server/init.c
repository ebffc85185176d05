/* init.c: `tether-workspace init --dir D`: a new workspace directory with
 * workspace.conf, admin.token (0600), a self-signed TLS pair and the
 * database at the current schema version. */
#include "workspace/server/ws.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_conf(const char *dir, int port, int plain_port, struct err *e)
{
	char *path = xasprintf("%s/workspace.conf", dir);
	char *text =
	    xasprintf("# tether-workspace configuration (docs/workspace.md)\n"
	              "listen = 127.0.0.1\n"
	              "port = %d\n"
	              "plain_port = %d\n"
	              "cert = tls.crt\n"
	              "key = tls.key\n"
	              "db = workspace.db\n"
	              "lease_ttl = 10m\n"
	              "lost_grace = 60s\n"
	              "lost_margin = 30s\n"
	              "poll = 30s\n"
	              "poll_max_wait = 60s\n",
	              port, plain_port);
	int r = file_write_atomic(path, text, strlen(text), 0644, e);

	free(text);
	free(path);
	return r;
}

static int write_token(const char *dir, struct err *e)
{
	char tok[80], *path = xasprintf("%s/admin.token", dir);
	size_t n;
	int r;

	auth_new_token("tw_", tok, sizeof(tok) - 1); /* room for the '\n' */
	n = strlen(tok);
	tok[n++] = '\n';
	r = file_write_atomic(path, tok, n, 0600, e);
	explicit_bzero(tok, sizeof(tok));
	free(path);
	return r;
}

int init_run(const char *dir, int port, int plain_port, char *const *tls_ips,
             int ntls_ips, struct err *e)
{
	struct ws ws = {0};
	char *conf = xasprintf("%s/workspace.conf", dir), *cert = NULL,
	     *key = NULL, *db = NULL, *sub = NULL;
	int r;

	if (access(conf, F_OK) == 0) {
		r = err_set(e, TERR_EXISTS,
		            "%s exists: this directory is already a workspace",
		            conf);
		goto out;
	}
	for (int i = 0; i < ntls_ips; i++) { /* before anything is made */
		unsigned char buf[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, tls_ips[i], buf) != 1 &&
		    inet_pton(AF_INET6, tls_ips[i], buf) != 1) {
			r = err_set(e, TERR_INVAL,
			            "--tls-ip %s: not an IP address",
			            tls_ips[i]);
			goto out;
		}
	}
	if ((r = mkdir_p(dir, 0700, e)) < 0)
		goto out;
	sub = xasprintf("%s/blobs", dir);
	if ((r = mkdir_p(sub, 0700, e)) < 0)
		goto out;
	free(sub);
	sub = xasprintf("%s/tmp", dir);
	if ((r = mkdir_p(sub, 0700, e)) < 0)
		goto out;
	cert = xasprintf("%s/tls.crt", dir);
	key = xasprintf("%s/tls.key", dir);
	db = xasprintf("%s/workspace.db", dir);
	if ((r = tls_write_selfsigned_ips(cert, key, tls_ips, ntls_ips, e)) <
	        0 ||
	    (r = write_token(dir, e)) < 0)
		goto out;
	if ((r = store_open(&ws, db, e)) < 0)
		goto out;
	store_close(&ws);
	r = write_conf(dir, port, plain_port, e);
out:
	free(conf);
	free(cert);
	free(key);
	free(db);
	free(sub);
	return r;
}
