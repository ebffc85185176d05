/* cmd.h: tether-agent subcommands, one file each (cmd-*.c), one table
 * entry per command. */
#ifndef TETHER_AGENT_CMD_H
#define TETHER_AGENT_CMD_H

#include <stdbool.h>
#include <sqlite3.h>

#include "agent/config.h"
#include "common/cmd.h"

struct cmd_ctx {
	struct agent_conf conf;
	bool re_register, now, follow;
	/* how conf was made (the daemon re-reads it on SIGHUP) */
	const char *conf_path;
	char **sets;
	int nsets;
};

extern const struct cmd_entry cmd_run, cmd_submit, cmd_status, cmd_jobs,
    cmd_logs, cmd_outputs, cmd_drain, cmd_rotate, cmd_config_reference,
    cmd_config_sample, cmd_envs, cmd_images;

/* Open agent.db of the configured state dir for a local command; prints
 * the error and returns NULL on failure. */
sqlite3 *cmd_open_db(struct cmd_ctx *c);
/* The latest attempt directory of a job, or NULL (error printed). */
char *cmd_attempt_dir(struct cmd_ctx *c, const char *job);

#endif
