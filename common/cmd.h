/* cmd.h: the shape of a subcommand table entry, one for every program
 * (tether-agent: agent/cmd.h, tether-runner: runner/cmd.h).  Each program
 * completes struct cmd_ctx with what its commands share, writes one
 * cmd-<name>.c per command exporting a `const struct cmd_entry`, and lists
 * them in one NULL-terminated table. */
#ifndef TETHER_COMMON_CMD_H
#define TETHER_COMMON_CMD_H

struct cmd_ctx; /* the program's own */

struct cmd_entry {
	const char *name;
	const char *usage; /* arguments after the name */
	const char *help;  /* one line */
	int (*run)(struct cmd_ctx *c, int argc, char **argv);
};

/* The entry of table (NULL-terminated) called name, or NULL. */
const struct cmd_entry *cmd_find(const struct cmd_entry *const *table,
                                 const char *name);

#endif
