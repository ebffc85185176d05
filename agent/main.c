/* tether-agent: the node daemon that attaches this machine to a workspace. */
#include "common/log.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether-agent [--help] [--version]\n"
	        "the node daemon that attaches this machine to a workspace\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, 0, 'h'},
	                                     {"version", no_argument, 0, 'V'},
	                                     {0, 0, 0, 0}};
	int c;

	opterr = 0;
	log_set_prog("tether-agent");
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tether-agent %s\n", TETHER_VERSION);
			return 0;
		default:
			cli_usage_error("tether-agent", "unknown option '%s'",
			                cli_bad_option(argc, argv));
		}
	}
	usage(stderr);
	return 2;
}
