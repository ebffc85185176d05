/* cmd-jobs.c: tether jobs [--state S] [--agent A] [--limit N] */
#include "cli/cli.h"
#include "common/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void add_arg(struct buf *q, const char *k, const char *v)
{
	char *esc = curl_easy_escape(NULL, v, 0);

	buf_printf(q, NULL, "%s%s=%s", q->len ? "&" : "?", k, esc);
	curl_free(esc);
}

static void print_jobs(json_t *r)
{
	static const char *const head[] = {"ID", "NAME", "STATE", "ATTEMPT",
	                                   "AGENT"};
	struct columns *t = columns_new(5, head);
	json_t *j;
	size_t i;

	json_array_foreach(json_object_get(r, "jobs"), i, j)
	{
		char id[24], att[24];
		const char *row[5];
		snprintf(
		    id, sizeof(id), "%lld",
		    (long long)json_integer_value(json_object_get(j, "id")));
		snprintf(att, sizeof(att), "%lld",
		         (long long)json_integer_value(
		             json_object_get(j, "attempt")));
		row[0] = id;
		row[1] = json_string_value(json_object_get(j, "name"));
		row[2] = json_string_value(json_object_get(j, "state"));
		row[3] = att;
		row[4] = json_string_value(json_object_get(j, "agent"));
		columns_add(t, row);
	}
	columns_print(t, stdout);
	columns_free(t);
}

static int cmd_jobs(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {{"state", required_argument, 0, 's'},
	                                   {"agent", required_argument, 0, 'a'},
	                                   {"limit", required_argument, 0, 'n'},
	                                   {0, 0, 0, 0}};
	struct buf q;
	char *path;
	int ch, rc;

	buf_init(&q, 4096);
	while ((ch = getopt_long(argc, argv, "s:a:n:", lo, NULL)) != -1) {
		if (ch == '?')
			cli_usage_error("tether jobs", "bad option '%s'",
			                cli_bad_option(argc, argv));
		add_arg(&q,
		        ch == 's'   ? "state"
		        : ch == 'a' ? "agent"
		                    : "limit",
		        optarg);
	}
	if (optind != argc)
		cli_usage_error("tether jobs", "unexpected argument '%s'",
		                argv[optind]);
	path = xasprintf("/api/v1/jobs%s", q.data ? q.data : "");
	rc = api_show(c, "GET", path, NULL, print_jobs);
	free(path);
	buf_free(&q);
	return rc;
}

const struct cmd_entry cmd_jobs_entry = {"jobs",
                                         "[--state S] [--agent A] [--limit N]",
                                         "list jobs, newest first", cmd_jobs};
