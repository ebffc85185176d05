/* tether-runner: the per-attempt job supervisor (started by tether-agent).
 *
 *   tether-runner run <attempt-dir>   run one attempt (docs/state-dir.md)
 *   tether-runner pack-checkpoint <attempt-dir>   pack checkpoints/ for
 *                                      upload (docs/checkpointing.md)
 *   tether-runner envs [build|prune] ...   the environment cache
 *                                      (env-cache.c, docs/environments.md)
 */
#include "common/log.h"
#include "common/util.h"
#include "runner/env/env.h"
#include "runner/supervisor/supervisor.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: tether-runner [--help] [--version] COMMAND ARGS\n"
	       "the per-attempt job supervisor (started by tether-agent)\n"
	       "  run DIR   run the attempt in DIR (spec.json) to result.json\n"
	       "  pack-checkpoint DIR   pack DIR/checkpoints into "
	       "checkpoint-out.<sha256>.tar.gz\n"
	       "  envs [--state-dir D | --env-dir D] [--json]   list the "
	       "environment cache\n"
	       "  envs prune (--budget SIZE | --all)   evict from it\n"
	       "  envs build DIR   build DIR/spec.json's environment ahead\n");
}

static int cmd_run(int argc, char **argv)
{
	char dir[PATH_MAX];

	if (argc != 2)
		cli_usage_error("tether-runner",
		                "%s needs one attempt "
		                "directory",
		                argv[0]);
	if (realpath(argv[1], dir) == NULL) {
		log_error_errno("attempt directory %s", argv[1]);
		return 1;
	}
	if (strcmp(argv[0], "pack-checkpoint") == 0)
		return supervisor_pack_main(dir);
	return supervisor_main(dir);
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
	if (optind < argc && (strcmp(argv[optind], "run") == 0 ||
	                      strcmp(argv[optind], "pack-checkpoint") == 0))
		return cmd_run(argc - optind, argv + optind);
	if (optind < argc && strcmp(argv[optind], "envs") == 0)
		return env_cache_main(argc - optind, argv + optind);
	if (optind < argc)
		cli_usage_error("tether-runner", "unknown command '%s'",
		                argv[optind]);
	usage(stderr);
	return 2;
}
