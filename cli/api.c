/* api.c: JSON calls to the workspace and how their failures are shown
 * and turned into exit codes. */
#include "cli/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "transport/proto-error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The exit code for an error reply: by its protocol error, then by who
 * is to blame (a 4xx: the request). */
static int exit_for_status(long st)
{
	int code = proto_error_code(st);

	if (code == TERR_AUTH)
		return EXIT_AUTH;
	if (code == TERR_NOTFOUND)
		return EXIT_NOTFOUND;
	if (st >= 400 && st < 500)
		return EXIT_REJECTED;
	return EXIT_FAILED;
}

int api_fail(struct cmd_ctx *c, const struct http_reply *r, const struct err *e,
             int rc)
{
	json_t *b;
	const char *msg;

	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", c->prog, e->msg);
		return rc == TERR_NET ? EXIT_UNREACHABLE : EXIT_FAILED;
	}
	b = r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
	msg = proto_error_message(b);
	if (c->json && b != NULL)
		cli_print_json(b);
	else if (msg != NULL)
		fprintf(stderr, "%s: %s (HTTP %ld)\n", c->prog, msg, r->status);
	else
		fprintf(stderr, "%s: the workspace answered HTTP %ld\n",
		        c->prog, r->status);
	json_decref(b);
	return exit_for_status(r->status);
}

int api_json(struct cmd_ctx *c, const char *method, const char *path,
             json_t *body, json_t **out)
{
	struct http_reply r;
	struct err e = {0};
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc;

	*out = NULL;
	rc = http_call(c, method, path, text, text ? strlen(text) : 0,
	               text ? "application/json" : NULL, 120, &r, &e);
	free(text);
	if (rc < 0 || r.status < 200 || r.status >= 300) {
		rc = api_fail(c, &r, &e, rc);
		http_reply_free(&r);
		return rc;
	}
	*out = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
	http_reply_free(&r);
	if (*out == NULL) {
		fprintf(stderr,
		        "%s: the workspace sent a reply that is not "
		        "JSON\n",
		        c->prog);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

int api_show(struct cmd_ctx *c, const char *method, const char *path,
             json_t *body, void (*print)(json_t *reply))
{
	json_t *r = NULL;
	int rc = api_json(c, method, path, body, &r);

	if (rc != EXIT_OK)
		return rc;
	if (c->json)
		cli_print_json(r);
	else
		print(r);
	json_decref(r);
	return EXIT_OK;
}

int api_done(struct cmd_ctx *c, const char *method, const char *path,
             const char *fmt, ...)
{
	json_t *r = NULL;
	int rc = api_json(c, method, path, NULL, &r);
	va_list ap;

	if (rc != EXIT_OK)
		return rc;
	if (c->json)
		cli_print_json(r);
	else {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	json_decref(r);
	return EXIT_OK;
}

void api_print_token(json_t *reply)
{
	printf("%s\n", json_string_value(json_object_get(reply, "token")));
}

int64_t cli_parse_id(const char *s)
{
	int64_t v;

	if (s == NULL || parse_i64(s, 1, INT64_MAX, &v, NULL) < 0)
		return -1;
	return v;
}

void cli_print_json(json_t *v)
{
	char *t = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);

	if (t != NULL)
		printf("%s\n", t);
	free(t);
}

void cli_usage(const struct cmd_entry *ce, FILE *f)
{
	fprintf(f, "usage: tether %s %s\n%s\n", ce->name, ce->usage, ce->help);
}
