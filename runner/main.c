/* tether-runner: the per-attempt job supervisor (started by tether-agent).
 *
 *   tether-runner run <attempt-dir>   run one attempt (docs/state-dir.md)
 *   tether-runner pack-checkpoint <attempt-dir>   pack checkpoints/ for
 *                                      upload (docs/checkpointing.md)
 *   tether-runner envs [build|prune] ...   the environment cache
 *                                      (cmd-envs.c, docs/environments.md)
 *
 * One cmd-*.c per command, listed in commands[] below (shape: common/cmd.h).
 */
#include "common/log.h"
#include "common/util.h"
#include "common/err.h"
#include "runner/cmd.h"
#include "runner/split.h"

#include <getopt.h>
#include <stdio.h>

static const struct cmd_entry *const commands[] = {
    &cmd_run_entry, &cmd_pack_checkpoint_entry, &cmd_envs_entry, NULL};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether-runner [--help] [--version] COMMAND ARGS\n"
	        "the per-attempt job supervisor (started by tether-agent)\n");
	for (int i = 0; commands[i] != NULL; i++)
		fprintf(f, "  %s %s   %s\n", commands[i]->name,
		        commands[i]->usage, commands[i]->help);
	fprintf(f, "  envs prune (--budget SIZE | --all)   evict from it\n"
	           "  envs build DIR   build DIR/spec.json's environment "
	           "ahead\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, 0, 'h'},
	                                     {"version", no_argument, 0, 'V'},
	                                     {0, 0, 0, 0}};
	int c;

	opterr = 0;
	log_set_prog("tether-runner");
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tether-runner %s\n", TETHER_VERSION);
			return 0;
		default:
			cli_usage_error("tether-runner", "unknown option '%s'",
			                cli_bad_option(argc, argv));
		}
	}
	if (optind < argc) {
		const struct cmd_entry *cmd = cmd_find(commands, argv[optind]);
		struct cmd_ctx ctx = {.prog = "tether-runner"};

		if (cmd == NULL)
			cli_usage_error("tether-runner", "unknown command '%s'",
			                argv[optind]);
		if (!runner_is_full && cmd != &cmd_run_entry) {
			struct err e = {0}; /* split.h: only `run` is here */

			runner_exec_full(argv, &e);
			log_error("%s", e.msg);
			return 1;
		}
		return cmd->run(&ctx, argc - optind, argv + optind);
	}
	usage(stderr);
	return 2;
}
