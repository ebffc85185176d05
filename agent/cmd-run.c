/* cmd-run.c: `tether-agent [run]`: the daemon. */
#include "agent/agent.h"
#include "agent/cmd.h"

#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

static int cmd_run_main(struct cmd_ctx *c, int argc, char **argv)
{
	struct agent a;
	struct err e = {0};
	enum log_level lvl;
	int rc = 0;

	memset(&a, 0, sizeof(a));
	a.conf = c->conf;
	a.re_register = c->re_register;
	a.conf_path = c->conf_path;
	a.conf_sets = c->sets;
	a.conf_nsets = c->nsets;
	if (log_parse_level(a.conf.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (agent_run(&a, &e) < 0) {
		log_error("%s", e.msg);
		fprintf(stderr, "tether-agent: %s\n", e.msg);
		rc = 1;
	}
	agent_free(&a);
	/* the conf strings now belong to (and were freed with) the agent */
	memset(&c->conf, 0, sizeof(c->conf));
	return rc;
}

const struct cmd_entry cmd_run = {
    "run", "", "run the daemon (the default command)", cmd_run_main};
