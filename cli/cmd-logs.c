/* cmd-logs.c: tether logs JOB [-f] [--attempt N] */
#include "cli/cli.h"
#include "common/util.h"

#include <getopt.h>
#include <stdlib.h>

static int cmd_logs(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {
	    {"follow", no_argument, 0, 'f'},
	    {"attempt", required_argument, 0, 'a'},
	    {0, 0, 0, 0}};
	bool follow = false;
	int64_t job, att = 0;
	char *state = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "fa:", lo, NULL)) != -1) {
		if (ch == 'f')
			follow = true;
		else if (ch == 'a' && (att = cli_parse_id(optarg)) > 0)
			continue;
		else
			cli_usage_error("tether logs", "bad option '%s'",
			                cli_bad_option(argc, argv));
	}
	if (optind + 1 != argc || (job = cli_parse_id(argv[optind])) < 0)
		cli_usage_error("tether logs", "expected one job id");
	rc = follow_log(c, job, att, follow, stdout, &state);
	free(state);
	return rc;
}

const struct cmd_entry cmd_logs_entry = {
    "logs", "JOB [-f] [--attempt N]",
    "print a job's log; -f follows it until the job ends", cmd_logs};
