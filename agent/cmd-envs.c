/* cmd-envs.c: `tether-agent envs [--json]` and `tether-agent envs prune
 * (--budget SIZE | --all)`: the runner's environment cache commands
 * (docs/environments.md) on this agent's env_dir (<state_dir>/envs). */
#include "agent/agent.h"
#include "agent/cmd.h"

#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_envs_main(struct cmd_ctx *c, int argc, char **argv)
{
	char *runner = launch_find_runner(&c->conf);
	char *env_dir = agent_conf_env_dir(&c->conf);
	char **av = xcalloc((size_t)argc + 6, sizeof(char *));
	int n = 0, i = 0;

	av[n++] = runner;
	av[n++] = "envs";
	if (argc > 0 && argv[0][0] != '-') {
		if (strcmp(argv[0], "prune") != 0) {
			fprintf(stderr,
			        "tether-agent: envs: unknown command '%s' "
			        "(envs [--json] | envs prune --budget SIZE | "
			        "envs prune --all)\n",
			        argv[0]);
			free(av);
			free(env_dir);
			free(runner);
			return 2;
		}
		av[n++] = argv[i++];
	}
	av[n++] = "--env-dir";
	av[n++] = env_dir;
	while (i < argc)
		av[n++] = argv[i++];
	fflush(NULL);
	execv(runner, av);
	fprintf(stderr, "tether-agent: %s: %s\n", runner, strerror(errno));
	free(av);
	free(env_dir);
	free(runner);
	return 1;
}

const struct cmd_entry cmd_envs = {
    "envs", "[prune]",
    "list cached environments, or prune them (--budget SIZE | --all)",
    cmd_envs_main};
