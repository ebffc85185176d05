/* cmd-viewer-token.c: tether viewer-token create [--name N] [--ttl D]
 *                     tether viewer-token list
 *                     tether viewer-token revoke ID
 * Viewer tokens log in to the web page (or call the API) read-only: GET
 * calls only, no cancel, no submit (docs/web.md). */
#include "cli/cli.h"
#include "common/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define PROG "tether viewer-token"

static int vt_create(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {{"name", required_argument, 0, 'n'},
	                                   {"ttl", required_argument, 0, 't'},
	                                   {0, 0, 0, 0}};
	json_t *body = json_object();
	struct err e = {0};
	int64_t ms;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "n:t:", lo, NULL)) != -1) {
		if (ch == 'n')
			json_object_set_new(body, "name", json_string(optarg));
		else if (ch == 't' && parse_duration_ms(optarg, &ms, &e) == 0)
			json_object_set_new(body, "ttl",
			                    json_real((double)ms / 1000.0));
		else
			cli_usage_error(PROG, "bad option '%s'%s%s",
			                cli_bad_option(argc, argv),
			                e.msg[0] ? ": " : "", e.msg);
	}
	if (optind != argc)
		cli_usage_error(PROG, "create takes no argument");
	rc =
	    api_show(c, "POST", "/api/v1/viewer-tokens", body, api_print_token);
	json_decref(body);
	return rc;
}

static void print_tokens(json_t *r)
{
	json_t *t, *exp;
	size_t i;

	printf("%-20s %-8s %-12s %s\n", "ID", "STATE", "EXPIRES", "NAME");
	json_array_foreach(json_object_get(r, "viewer_tokens"), i, t)
	{
		exp = json_object_get(t, "expires_at");
		printf("%-20s %-8s %-12.0f %s\n",
		       json_string_value(json_object_get(t, "id")),
		       json_is_true(json_object_get(t, "revoked")) ? "revoked"
		                                                   : "active",
		       json_is_number(exp) ? json_number_value(exp) : 0.0,
		       json_string_value(json_object_get(t, "name")));
	}
}

static int vt_list(struct cmd_ctx *c)
{
	return api_show(c, "GET", "/api/v1/viewer-tokens", NULL, print_tokens);
}

static int vt_revoke(struct cmd_ctx *c, const char *id)
{
	char *esc = curl_easy_escape(NULL, id, 0);
	char *path = xasprintf("/api/v1/viewer-tokens/%s", esc);
	int rc;

	curl_free(esc);
	rc = api_done(c, "DELETE", path, "viewer token %s: revoked", id);
	free(path);
	return rc;
}

static int cmd_viewer_token(struct cmd_ctx *c, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "create") == 0)
		return vt_create(c, argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return vt_list(c);
	if (argc == 3 && strcmp(argv[1], "revoke") == 0)
		return vt_revoke(c, argv[2]);
	cli_usage_error(PROG, "expected 'create [--name N] [--ttl D]', 'list' "
	                      "or 'revoke ID'");
}

const struct cmd_entry cmd_viewer_token_entry = {
    "viewer-token", "create [--name N] [--ttl D] | list | revoke ID",
    "make, list or revoke read-only tokens for the web page (docs/web.md)",
    cmd_viewer_token};
