/* tether-workspace: the reference workspace server. */
#include "common/log.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: tether-workspace [--help] [--version]\n"
	           "the reference workspace server\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, 0, 'h'},
	                                     {"version", no_argument, 0, 'V'},
	                                     {0, 0, 0, 0}};
	int c;

	opterr = 0;
	log_set_prog("tether-workspace");
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tether-workspace %s\n", TETHER_VERSION);
			return 0;
		default:
			cli_usage_error("tether-workspace",
			                "unknown option '%s'",
			                cli_bad_option(argc, argv));
		}
	}
	usage(stderr);
	return 2;
}
