/* cmd-attach.h: `tether attach` (cmd-attach.c) and its SSH side
 * (cmd-attach-ssh.c): run commands on, and copy files to, the machine being
 * attached, over one libssh2 session whose host key was verified. */
#ifndef TETHER_CLI_CMD_ATTACH_H
#define TETHER_CLI_CMD_ATTACH_H

#include "common/buf.h"
#include "transport/ssh-tunnel.h"

#include <stdbool.h>
#include <stdint.h>

struct err;
struct ssh_conn;
struct remote;

/* Connect, verify the host key, authenticate (transport/ssh-tunnel-conn.c);
 * then calls block, each bounded by timeout_ms. */
int remote_open(const struct ssh_tunnel_opts *o, int timeout_ms,
                struct remote **out, struct err *e);
void remote_close(struct remote *r);
/* user@host:port, for messages. */
const char *remote_name(const struct remote *r);
/* Run cmd with sh on the far side; stdout and stderr (merged, capped) go
 * to out, the exit status to *status (-1 when it died of a signal). */
int remote_exec(struct remote *r, const char *cmd, struct buf *out, int *status,
                struct err *e);
/* Copy a local file to remote_path (created or truncated) with mode. */
int remote_put(struct remote *r, const char *local, const char *remote_path,
               long mode, struct err *e);
/* 'text' quoted for sh, into a fresh string. */
char *sh_quote(const char *text);

/* One `tether attach` (cmd-attach.c). */
struct attach {
	struct cli *c;
	struct ssh_tunnel_opts o;
	const char *name, *labels, *agent_ws, *from, *installer;
	bool replace;
	int64_t timeout_ms;
	struct remote *r;
	char *rdir, *hostname, *machine_id, *agent_id, *token, *agent_name;
	bool running;
};

/* Run cmd there; a non-zero exit is an error showing its output (out is
 * initialised and must be freed by the caller). */
int attach_run_remote(struct attach *a, const char *what, const char *cmd,
                      struct buf *out, struct err *e);
/* Copy the binaries and the installer into a fresh directory there
 * (a->rdir), cmd-attach-files.c. */
int attach_upload(struct attach *a, struct err *e);

#endif
