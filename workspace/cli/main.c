/* tether: the command-line client of a Tether workspace. */
#include "common/log.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: tether [--help] [--version]\n"
	           "the command-line client of a Tether workspace\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, 0, 'h'},
	                                     {"version", no_argument, 0, 'V'},
	                                     {0, 0, 0, 0}};
	int c;

	opterr = 0;
	log_set_prog("tether");
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tether %s\n", TETHER_VERSION);
			return 0;
		default:
			fprintf(stderr,
			        "tether: bad option; see 'tether --help'\n");
			return 2;
		}
	}
	usage(stderr);
	return 2;
}
