/* cmd-attach.h: `tether attach` (cmd-attach.c, cmd-attach-files.c): run
 * commands on, and copy files to, the machine being attached, over one SSH
 * session whose host key was verified (transport/ssh-remote.h). */
#ifndef TETHER_CLI_CMD_ATTACH_H
#define TETHER_CLI_CMD_ATTACH_H

#include "common/buf.h"
#include "transport/ssh-remote.h"
#include "transport/ssh-tunnel.h"

#include <stdbool.h>
#include <stdint.h>

struct cmd_ctx;
struct err;

/* One `tether attach` (cmd-attach.c). */
struct attach {
	struct cmd_ctx *c;
	struct ssh_tunnel_opts o;
	const char *name, *labels, *agent_ws, *from, *installer;
	bool replace;
	int64_t timeout_ms;
	struct ssh_remote *r;
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
