/* cmd-token.c: tether token create [--uses N] [--ttl D] [--label L]... */
#include "cli/cli.h"
#include "common/util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static int cmd_token(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {{"uses", required_argument, 0, 'u'},
	                                   {"ttl", required_argument, 0, 't'},
	                                   {"label", required_argument, 0, 'l'},
	                                   {0, 0, 0, 0}};
	json_t *body = json_object(), *labels = json_array();
	struct err e = {0};
	int64_t uses, ms;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "u:t:l:", lo, NULL)) != -1) {
		if (ch == 'u' && parse_i64(optarg, 1, 1000000, &uses, &e) == 0)
			json_object_set_new(body, "uses", json_integer(uses));
		else if (ch == 't' && parse_duration_ms(optarg, &ms, &e) == 0)
			json_object_set_new(body, "ttl",
			                    json_real((double)ms / 1000.0));
		else if (ch == 'l')
			json_array_append_new(labels, json_string(optarg));
		else
			cli_usage_error("tether token", "bad option '%s'%s%s",
			                cli_bad_option(argc, argv),
			                e.msg[0] ? ": " : "", e.msg);
	}
	if (optind + 1 != argc || strcmp(argv[optind], "create") != 0)
		cli_usage_error("tether token", "expected 'create'");
	json_object_set_new(body, "labels", labels);
	rc = api_show(c, "POST", "/api/v1/tokens", body, api_print_token);
	json_decref(body);
	return rc;
}

const struct cmd_entry cmd_token_entry = {
    "token", "create [--uses N] [--ttl D] [--label L]...",
    "make a registration token for agents (printed once)", cmd_token};
