/* cmd-drain.c: `tether-agent drain [--now]`: SIGTERM (drain: no new jobs,
 * queued ones handed back, exit when running ones are done) or SIGQUIT
 * (--now: exit at once, runners keep running) to the running agent. */
#include "agent/cmd.h"
#include "agent/creds.h"

#include <signal.h>
#include <stdio.h>

static int cmd_drain_main(struct cmd_ctx *c, int argc, char **argv)
{
	pid_t pid = creds_lock_holder(c->conf.state_dir);

	if (pid <= 0) {
		fprintf(stderr, "tether-agent: no agent runs on %s\n",
		        c->conf.state_dir);
		return 1;
	}
	if (kill(pid, c->now ? SIGQUIT : SIGTERM) < 0) {
		perror("tether-agent: kill");
		return 1;
	}
	printf("%s agent pid %d\n", c->now ? "stopping" : "draining", (int)pid);
	return 0;
}

const struct cmd_entry cmd_drain = {
    "drain", "[--now]",
    "stop taking jobs and exit when running ones end (--now: at once)",
    cmd_drain_main};
