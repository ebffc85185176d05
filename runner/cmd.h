/* cmd.h: tether-runner's commands, one file each (cmd-*.c), one entry
 * each in the table of main.c (the shape: common/cmd.h). */
#ifndef TETHER_RUNNER_CMD_H
#define TETHER_RUNNER_CMD_H

#include "common/cmd.h"

struct cmd_ctx {
	const char *prog; /* "tether-runner" */
};

extern const struct cmd_entry cmd_run_entry, cmd_pack_checkpoint_entry,
    cmd_envs_entry;

/* `tether-runner envs build DIR` (cmd-envs-build.c), argv[0] "build". */
int cmd_envs_build(int argc, char **argv);

#endif
