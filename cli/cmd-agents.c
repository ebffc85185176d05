/* cmd-agents.c: tether agents | agents revoke NAME | agents drain NAME */
#include "cli/cli.h"
#include "common/util.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static void print_agents(json_t *r)
{
	static const char *const head[] = {"NAME",   "STATE",   "CPUS",
	                                   "MEMORY", "RUNNING", "LABELS"};
	struct columns *t = columns_new(6, head);
	json_t *a, *l;
	size_t i, k;

	json_array_foreach(json_object_get(r, "agents"), i, a)
	{
		json_t *cap = json_object_get(a, "capacity");
		char cpus[32], mem[32], run[32];
		const char *row[6];
		struct buf labels;

		buf_init(&labels, 1 << 16);
		snprintf(cpus, sizeof(cpus), "%g",
		         json_number_value(json_object_get(cap, "cpus")));
		snprintf(
		    mem, sizeof(mem), "%.1f",
		    (double)json_integer_value(json_object_get(cap, "memory")) /
		        (1 << 30));
		snprintf(run, sizeof(run), "%lld",
		         (long long)json_integer_value(
		             json_object_get(a, "running")));
		json_array_foreach(json_object_get(a, "labels"), k, l)
		    buf_printf(&labels, NULL, "%s%s", k ? "," : "",
		               json_string_value(l));
		row[0] = json_string_value(json_object_get(a, "name"));
		row[1] = json_string_value(json_object_get(a, "state"));
		row[2] = cpus;
		row[3] = mem;
		row[4] = run;
		row[5] = labels.data ? labels.data : "";
		columns_add(t, row);
		buf_free(&labels);
	}
	columns_print(t, stdout);
	columns_free(t);
}

/* revoke / drain one agent by name or id. */
static int act(struct cmd_ctx *c, const char *verb, const char *name)
{
	bool revoke = strcmp(verb, "revoke") == 0;
	char *esc = curl_easy_escape(NULL, name, 0), *path;
	int rc;

	if (revoke)
		path = xasprintf("/api/v1/agents/%s", esc);
	else
		path = xasprintf("/api/v1/agents/%s/drain", esc);
	curl_free(esc);
	rc = api_done(c, revoke ? "DELETE" : "POST", path, "agent %s: %s", name,
	              revoke ? "revoked" : "draining");
	free(path);
	return rc;
}

static int cmd_agents(struct cmd_ctx *c, int argc, char **argv)
{
	if (argc == 3 &&
	    (strcmp(argv[1], "revoke") == 0 || strcmp(argv[1], "drain") == 0))
		return act(c, argv[1], argv[2]);
	if (argc != 1)
		cli_usage_error("tether agents",
		                "expected no argument, 'revoke NAME' or 'drain "
		                "NAME'");
	return api_show(c, "GET", "/api/v1/agents", NULL, print_agents);
}

const struct cmd_entry cmd_agents_entry = {
    "agents", "[revoke NAME | drain NAME]",
    "list agents; revoke one (its secret stops working) or drain it",
    cmd_agents};
