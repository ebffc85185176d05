/* tether-agent: the node daemon that attaches this machine to a workspace.
 * Subcommands are table entries in cmd-*.c. */
#include "agent/cmd.h"
#include "agent/doctor.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cmd_entry *const commands[] = {&cmd_run,
                                                   &cmd_submit,
                                                   &cmd_status,
                                                   &cmd_jobs,
                                                   &cmd_logs,
                                                   &cmd_outputs,
                                                   &cmd_drain,
                                                   &cmd_rotate,
                                                   &cmd_config_reference,
                                                   &cmd_config_sample,
                                                   &cmd_envs,
                                                   &cmd_images,
                                                   NULL};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether-agent [options] [command [args]]\n"
	        "the node daemon that attaches this machine to a workspace\n\n"
	        "commands:\n");
	for (int i = 0; commands[i] != NULL; i++)
		fprintf(f, "  %-18s %-10s %s\n", commands[i]->name,
		        commands[i]->usage, commands[i]->help);
	fprintf(f, "  %-18s %-10s %s\n", "doctor", "[--json]",
	        "check the node and report problems");
	fprintf(
	    f,
	    "\noptions:\n"
	    "  -c, --config FILE     config file (default " AGENT_CONF_DEFAULT
	    ")\n"
	    "  -s, --set KEY=VALUE   override one setting\n"
	    "      --workspace URL   same as --set workspace=URL\n"
	    "      --token TOKEN     same as --set token=TOKEN\n"
	    "      --state-dir DIR   same as --set state_dir=DIR\n"
	    "      --name NAME       same as --set name=NAME\n"
	    "      --re-register     register again (replaces this "
	    "machine's agent)\n"
	    "      --now             drain: stop at once, runners keep "
	    "running\n"
	    "  -f, --follow          logs: follow\n"
	    "  -h, --help, -V, --version\n\nsettings:\n");
	conf_print_help(agent_conf_table, f);
}

/* Global options that take a separate value ("--config X"). */
static const char *option_key(const char *arg)
{
	static const char *const with_value[][2] = {
	    {"-c", NULL},
	    {"--config", NULL},
	    {"-s", NULL},
	    {"--set", NULL},
	    {"--workspace", "workspace"},
	    {"--token", "token"},
	    {"--state-dir", "state_dir"},
	    {"--name", "name"}};

	for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
		if (strcmp(arg, with_value[i][0]) == 0)
			return with_value[i][1] ? with_value[i][1] : "";
	return NULL;
}

/* `tether-agent [options] doctor [args]`: doctor parses its own options
 * (doctor.c), so the global ones before it are handed over, --workspace
 * and friends as --set pairs. */
static int run_doctor(int argc, char **argv, int at)
{
	char **av = xcalloc((size_t)argc * 2 + 1, sizeof(char *));
	char **owned = xcalloc((size_t)argc + 1, sizeof(char *));
	int n = 0, k = 0, rc;

	av[n++] = argv[at];
	for (int i = 1; i < at; i++) {
		const char *key = option_key(argv[i]);
		const char *eq = strchr(argv[i], '=');
		char head[32];

		if (key == NULL && strncmp(argv[i], "--", 2) == 0 && eq &&
		    (size_t)(eq - argv[i]) < sizeof(head)) {
			snprintf(head, sizeof(head), "%.*s",
			         (int)(eq - argv[i]), argv[i]);
			key = option_key(head);
			if (key != NULL && key[0] != '\0') {
				av[n++] = "--set";
				av[n++] = owned[k++] =
				    xasprintf("%s=%s", key, eq + 1);
				continue;
			}
		}
		if (key != NULL && key[0] != '\0' && i + 1 < at) {
			av[n++] = "--set";
			av[n++] = owned[k++] =
			    xasprintf("%s=%s", key, argv[++i]);
			continue;
		}
		av[n++] = argv[i];
	}
	for (int i = at + 1; i < argc; i++)
		av[n++] = argv[i];
	rc = doctor_main(n, av);
	while (k > 0)
		free(owned[--k]);
	free(owned);
	free(av);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, 0, 'h'},
	    {"version", no_argument, 0, 'V'},
	    {"config", required_argument, 0, 'c'},
	    {"set", required_argument, 0, 's'},
	    {"workspace", required_argument, 0, 'W'},
	    {"token", required_argument, 0, 'T'},
	    {"state-dir", required_argument, 0, 'D'},
	    {"name", required_argument, 0, 'N'},
	    {"re-register", no_argument, 0, 'R'},
	    {"now", no_argument, 0, 'n'},
	    {"follow", no_argument, 0, 'f'},
	    {0, 0, 0, 0}};
	struct cmd_ctx ctx;
	const struct cmd_entry *cmd = &cmd_run;
	const char *config = getenv("TETHER_CONFIG");
	char *sets[64];
	int nsets = 0, c, rc, envs_at = 0;
	struct err e = {0};

	/* doctor parses its own options (doctor.c). */
	for (int i = 1; i < argc && argv[i][0] != '\0'; i++) {
		if (argv[i][0] == '-') {
			if (option_key(argv[i]) != NULL)
				i++; /* its value */
			continue;
		}
		if (strcmp(argv[i], "doctor") == 0)
			return run_doctor(argc, argv, i);
		/* envs passes its own options to the runner; images parses
		 * its own */
		if (strcmp(argv[i], "envs") == 0 ||
		    strcmp(argv[i], "images") == 0)
			envs_at = i;
		break;
	}
	memset(&ctx, 0, sizeof(ctx));
	opterr = 0;
	log_set_prog("tether-agent");
	while ((c = getopt_long(envs_at ? envs_at : argc, argv, "hVc:s:f", opts,
	                        NULL)) != -1) {
		const char *key = NULL;
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tether-agent %s\n", TETHER_VERSION);
			return 0;
		case 'c':
			config = optarg;
			break;
		case 'W':
			key = "workspace";
			break;
		case 'T':
			key = "token";
			break;
		case 'D':
			key = "state_dir";
			break;
		case 'N':
			key = "name";
			break;
		case 's':
			if (nsets < 64)
				sets[nsets++] = xstrdup(optarg);
			break;
		case 'R':
			ctx.re_register = true;
			break;
		case 'n':
			ctx.now = true;
			break;
		case 'f':
			ctx.follow = true;
			break;
		default:
			cli_usage_error("tether-agent", "unknown option '%s'",
			                cli_bad_option(argc, argv));
		}
		if (key != NULL && nsets < 64)
			sets[nsets++] = xasprintf("%s=%s", key, optarg);
	}
	if (envs_at > 0) {
		cmd = cmd_find(commands, argv[envs_at]);
		optind = envs_at + 1;
	} else if (optind < argc) {
		cmd = cmd_find(commands, argv[optind]);
		if (cmd == NULL)
			cli_usage_error("tether-agent", "unknown command '%s'",
			                argv[optind]);
		optind++;
	}
	rc = agent_conf_load(&ctx.conf, config, &e);
	for (int i = 0; i < nsets && rc == 0; i++)
		rc = agent_conf_set(&ctx.conf, sets[i], &e);
	if (rc == 0)
		rc = agent_conf_check(&ctx.conf, &e);
	if (rc < 0) {
		fprintf(stderr, "tether-agent: %s\n", e.msg);
		rc = 2;
		goto out;
	}
	ctx.conf_path = config;
	ctx.sets = sets;
	ctx.nsets = nsets;
	rc = cmd->run(&ctx, argc - optind, argv + optind);
out:
	agent_conf_free(&ctx.conf);
	for (int i = 0; i < nsets; i++)
		free(sets[i]);
	return rc;
}
