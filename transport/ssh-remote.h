/* ssh-remote.h: a blocking SSH session to a machine, for `tether attach`
 * (cli/cmd-attach*.c): connect, verify the host key, authenticate (the
 * same steps as the SSH transport, ssh-tunnel-conn.c); then run commands
 * and copy files, each call bounded by the timeout.  The public face of the
 * SSH code for the CLI; transport/ssh-tunnel-int.h stays internal. */
#ifndef TETHER_SSH_REMOTE_H
#define TETHER_SSH_REMOTE_H

#include "transport/ssh-tunnel.h"

struct buf;
struct err;
struct ssh_remote;

int ssh_remote_open(const struct ssh_tunnel_opts *o, int timeout_ms,
                    struct ssh_remote **out, struct err *e);
/* Accepts NULL. */
void ssh_remote_close(struct ssh_remote *r);
/* user@host:port, for messages. */
const char *ssh_remote_name(const struct ssh_remote *r);
/* Run cmd with sh on the far side; stdout and stderr (merged, capped) go
 * to out, the exit status to *status (-1 when it died of a signal). */
int ssh_remote_exec(struct ssh_remote *r, const char *cmd, struct buf *out,
                    int *status, struct err *e);
/* Copy a local file to remote_path (created or truncated) with mode. */
int ssh_remote_put(struct ssh_remote *r, const char *local,
                   const char *remote_path, long mode, struct err *e);

#endif
