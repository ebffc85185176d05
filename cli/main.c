/* tether: the command-line client of a Tether workspace (docs/cli.md).
 *
 * Global options (--workspace, --token, --ca, --json) may appear anywhere;
 * they are taken out of argv before the subcommand parses the rest. */
#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether [--workspace URL] [--token TOKEN] [--ca FILE] "
	        "[--json] COMMAND [ARGS]\n"
	        "the command-line client of a Tether workspace\n\n"
	        "commands:\n");
	for (int i = 0; cmd_table[i] != NULL; i++)
		fprintf(f, "  %-8s %-34s %s\n", cmd_table[i]->name,
		        cmd_table[i]->usage, cmd_table[i]->help);
	fprintf(f, "\nsee docs/cli.md for exit codes and configuration\n");
}

/* Value of a global option at argv[*i] ("--x V" or "--x=V"), or NULL. */
static const char *global_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		cli_usage_error("tether", "%s needs a value", name);
	return argv[++*i];
}

/* Take global options out of argv; returns the new argc. */
static int take_globals(struct cmd_ctx *c, int argc, char **argv)
{
	int out = 1;
	const char *v;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if ((v = global_value(argc, argv, &i, "--workspace")) != NULL)
			c->url = xstrdup(v);
		else if ((v = global_value(argc, argv, &i, "--token")) != NULL)
			c->token = xstrdup(v);
		else if ((v = global_value(argc, argv, &i, "--ca")) != NULL)
			c->ca = xstrdup(v);
		else if (strcmp(argv[i], "--json") == 0)
			c->json = true;
		else
			argv[out++] = argv[i];
	}
	argv[out] = NULL;
	return out;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct cmd_ctx c = {.prog = "tether"};
	const struct cmd_entry *ce;
	struct err e = {0};
	int rc;

	log_set_prog("tether");
	argc = take_globals(&c, argc, argv);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("tether %s\n", TETHER_VERSION);
		return EXIT_OK;
	}
	if (argv[1][0] == '-')
		cli_usage_error("tether", "unknown option '%s'", argv[1]);
	if ((ce = cmd_find(cmd_table, argv[1])) == NULL)
		cli_usage_error("tether", "unknown command '%s'", argv[1]);
	if (wants_help(argc - 1, argv + 1)) {
		cli_usage(ce, stdout);
		return EXIT_OK;
	}
	if (cli_config_load(&c, &e) < 0) {
		fprintf(stderr, "tether: %s\n", e.msg);
		cli_free(&c);
		return EXIT_USAGE;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	optind = 1;
	opterr = 0;
	rc = ce->run(&c, argc - 1, argv + 1);
	cli_free(&c); /* its curl handle before libcurl's cleanup */
	curl_global_cleanup();
	return rc;
}
