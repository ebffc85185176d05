/* cmd-logs.c: tether logs JOB [-f] [--attempt N] [--rank K | --all-ranks] */
#include "cli/cli.h"
#include "common/util.h"

#include <getopt.h>
#include <stdlib.h>

static int cmd_logs(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {
	    {"follow", no_argument, 0, 'f'},
	    {"attempt", required_argument, 0, 'a'},
	    {"rank", required_argument, 0, 'r'},
	    {"all-ranks", no_argument, 0, 'R'},
	    {0, 0, 0, 0}};
	bool follow = false, all = false;
	int64_t job, att = 0, rank = -1;
	char *state = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "fa:", lo, NULL)) != -1) {
		if (ch == 'f')
			follow = true;
		else if (ch == 'a' && (att = cli_parse_id(optarg)) > 0)
			continue;
		else if (ch == 'r' &&
		         parse_i64(optarg, 0, INT64_MAX, &rank, NULL) == 0)
			continue;
		else if (ch == 'r')
			cli_usage_error(
			    "tether logs",
			    "--rank: '%s' is not a rank (0, 1, ...)", optarg);
		else if (ch == 'R')
			all = true;
		else
			cli_usage_error("tether logs", "bad option '%s'",
			                cli_bad_option(argc, argv));
	}
	if (optind + 1 != argc || (job = cli_parse_id(argv[optind])) < 0)
		cli_usage_error("tether logs", "expected one job id");
	if (all && rank >= 0)
		cli_usage_error("tether logs",
		                "--rank and --all-ranks: give one of them");
	if (all)
		rc = follow_all_ranks(c, job, att, follow, stdout, &state);
	else
		rc = follow_log_rank(c, job, att, rank, follow, stdout, &state);
	free(state);
	return rc;
}

const struct cmd_entry cmd_logs_entry = {
    "logs", "JOB [-f] [--attempt N] [--rank K | --all-ranks]",
    "print a job's log (rank 0's of a multi-node job); -f follows it until "
    "the job ends",
    cmd_logs};
