/* cmd-envs.c: `tether-runner envs [--state-dir D | --env-dir D] [--json]`
 * lists the environment cache (env-cache.c), `envs prune (--budget SIZE |
 * --all)` evicts from it, `envs build DIR` builds ahead (cmd-envs-build.c).
 * docs/environments.md. */
#include "runner/cmd.h"

#include "common/attempt.h"
#include "common/err.h"
#include "common/util.h"
#include "runner/env/env.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void envs_usage(FILE *f)
{
	fprintf(f,
	        "usage: tether-runner envs [--state-dir DIR | --env-dir DIR]"
	        " [--json]\n"
	        "       tether-runner envs prune [--state-dir DIR | --env-dir "
	        "DIR]\n"
	        "                  [--docker-socket PATH] (--budget SIZE | "
	        "--all)\n"
	        "list built environments (key, kind, size, last use, in use),"
	        " or remove\n"
	        "least-recently-used unused ones until the cache fits SIZE "
	        "(e.g. 20G)\n"
	        "       tether-runner envs remove-image [--docker-socket PATH]"
	        " KEY\n"
	        "remove an evicted docker environment's image\n"
	        "       tether-runner envs build DIR\n"
	        "build (or find) the environment of DIR/spec.json ahead of "
	        "its job\n");
}

static void envs_print(const struct env_entry *v, size_t n, bool json)
{
	json_t *a = json_array();

	if (!json)
		printf("%-12s  %-6s  %12s  %-20s  %s\n", "KEY", "KIND", "BYTES",
		       "LAST USED (UTC)", "IN USE");
	for (size_t i = 0; i < n; i++) {
		char when[32];
		time_t t = (time_t)v[i].last_used;
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
		         gmtime_r(&t, &tm));
		if (json)
			json_array_append_new(
			    a,
			    json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "key",
			              v[i].key, "kind", v[i].kind, "size_bytes",
			              (json_int_t)v[i].size_bytes, "created",
			              (json_int_t)v[i].created, "last_used",
			              (json_int_t)v[i].last_used, "in_use",
			              v[i].in_use));
		else
			printf("%-12.12s  %-6s  %12" PRId64 "  %-20s  %s\n",
			       v[i].key, v[i].kind, v[i].size_bytes, when,
			       v[i].in_use ? "yes" : "no");
	}
	if (json) {
		char *text = json_dumps(a, JSON_INDENT(1));
		printf("%s\n", text);
		free(text);
	}
	json_decref(a);
}

static int envs_list(const char *dir, bool json)
{
	struct env_entry *v;
	size_t n;
	struct err e = {0};

	if (env_cache_list(dir, &v, &n, &e) < 0) {
		fprintf(stderr, "tether-runner envs: %s\n", e.msg);
		return 1;
	}
	envs_print(v, n, json);
	free(v);
	return 0;
}

static int envs_prune(const char *dir, int64_t budget, const char *socket)
{
	struct err e = {0};
	int64_t freed;
	size_t removed;

	/* images of docker entries: through the agent's docker_socket */
	if (env_cache_prune_with(dir, budget, env_images_evicted,
	                         (void *)socket, &freed, &removed, &e) < 0) {
		fprintf(stderr, "tether-runner envs prune: %s\n", e.msg);
		return 1;
	}
	printf("removed %zu environment(s), %" PRId64 " bytes\n", removed,
	       freed);
	return 0;
}

/* `envs remove-image [--docker-socket PATH] KEY`: the image of an evicted
 * docker environment, for tether-runner's eviction (split-lite.c). */
static int envs_remove_image(int argc, char **argv, const char *socket)
{
	struct env_entry ent = {.kind = "docker"};

	if (argc != 1 || argv[0][0] == '\0' ||
	    strspn(argv[0], "0123456789abcdef") != strlen(argv[0]) ||
	    strlen(argv[0]) >= sizeof(ent.key))
		cli_usage_error("tether-runner envs remove-image",
		                "give one environment key (hex)");
	snprintf(ent.key, sizeof(ent.key), "%s", argv[0]);
	env_images_evicted((void *)socket, &ent);
	return 0;
}

static int cmd_envs(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, 0, 's'},
	    {"env-dir", required_argument, 0, 'e'},
	    {"budget", required_argument, 0, 'b'},
	    {"all", no_argument, 0, 'a'},
	    {"json", no_argument, 0, 'j'},
	    {"docker-socket", required_argument, 0, 'd'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	const char *state = ATTEMPT_DEF_STATE_DIR, *envdir = NULL;
	const char *socket = ATTEMPT_DEF_DOCKER_SOCKET;
	int64_t budget = -2;
	bool json = false, prune = false, remove_image = false;
	struct err e = {0};
	char *dir;
	int c, rc;

	if (argc > 1 && strcmp(argv[1], "build") == 0)
		return cmd_envs_build(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "prune") == 0) {
		prune = true;
		argc--;
		argv++;
	} else if (argc > 1 && strcmp(argv[1], "remove-image") == 0) {
		remove_image = true;
		argc--;
		argv++;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'e':
			envdir = optarg;
			break;
		case 'b':
			if (parse_size(optarg, &budget, &e) < 0)
				cli_usage_error("tether-runner envs",
				                "--budget: %s", e.msg);
			break;
		case 'a':
			budget = -1;
			break;
		case 'j':
			json = true;
			break;
		case 'd':
			socket = optarg;
			break;
		case 'h':
			envs_usage(stdout);
			return 0;
		default:
			cli_usage_error("tether-runner envs",
			                "unknown option '%s'",
			                cli_bad_option(argc, argv));
		}
	}
	if (remove_image)
		return envs_remove_image(argc - optind, argv + optind, socket);
	if (optind < argc)
		cli_usage_error("tether-runner envs", "unexpected '%s'",
		                argv[optind]);
	if (prune && budget == -2)
		cli_usage_error("tether-runner envs prune",
		                "give --budget SIZE or --all");
	dir = envdir ? xstrdup(envdir) : xasprintf("%s/envs", state);
	rc = prune ? envs_prune(dir, budget, socket) : envs_list(dir, json);
	free(dir);
	return rc;
}

const struct cmd_entry cmd_envs_entry = {
    "envs", "[--state-dir D | --env-dir D] [--json]",
    "list the environment cache", cmd_envs};
