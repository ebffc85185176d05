/* table.c: the subcommands, in the order `tether --help` lists them.
 * To add one: write cmd-<name>.c exporting cmd_<name>_entry, add a row. */
#include "cli/cli.h"

extern const struct cmd_entry cmd_submit_entry, cmd_logs_entry,
    cmd_status_entry, cmd_cancel_entry, cmd_jobs_entry, cmd_agents_entry,
    cmd_token_entry, cmd_outputs_entry;
extern const struct cmd_entry cmd_attach_entry;       /* cmd-attach.c */
extern const struct cmd_entry cmd_viewer_token_entry; /* web page */
extern const struct cmd_entry cmd_metrics_entry;      /* cmd-metrics.c */

const struct cmd_entry *const cmd_table[] = {
    &cmd_submit_entry, &cmd_logs_entry,         &cmd_metrics_entry,
    &cmd_status_entry, &cmd_cancel_entry,       &cmd_jobs_entry,
    &cmd_agents_entry, &cmd_token_entry,        &cmd_outputs_entry,
    &cmd_attach_entry, &cmd_viewer_token_entry, NULL,
};
