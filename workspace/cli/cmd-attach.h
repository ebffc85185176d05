/* cmd-attach.h: `tether attach` (cmd-attach.c) and its SSH side
 * (cmd-attach-ssh.c): run commands on, and copy files to, the machine being
 * attached, over one libssh2 session whose host key was verified. */
#ifndef TETHER_CLI_CMD_ATTACH_H
#define TETHER_CLI_CMD_ATTACH_H

#include "common/buf.h"
#include "transport/ssh-tunnel.h"

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

#endif
