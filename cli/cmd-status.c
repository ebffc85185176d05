/* cmd-status.c: tether status JOB */
#include "cli/cli.h"
#include "common/util.h"

#include <string.h>

static const char *str(json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : def;
}

static void print_num(const char *label, json_t *v, const char *unit)
{
	if (json_is_number(v))
		printf("  %-12s %g%s\n", label, json_number_value(v), unit);
}

/* Bytes in binary units: "812 bytes", "563 MiB", "1.50 GiB". */
static void fmt_size(char *out, size_t len, double n)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	int u = -1;

	if (n < 1024) {
		snprintf(out, len, "%.0f bytes", n);
		return;
	}
	while (n >= 1024 && u < 4) {
		n /= 1024;
		u++;
	}
	snprintf(out, len, "%.*f %s",
	         n >= 100  ? 0
	         : n >= 10 ? 1
	                   : 2,
	         n, units[u]);
}

static void print_size(const char *label, json_t *v)
{
	char s[48];

	if (!json_is_number(v))
		return;
	fmt_size(s, sizeof(s), json_number_value(v));
	printf("  %-12s %s\n", label, s);
}

/* A multi-node job: one row per rank of its current gang. */
static void print_ranks(json_t *j)
{
	static const char *const head[] = {"RANK",  "ATTEMPT", "AGENT",
	                                   "STATE", "EXIT",    "PEAK MEMORY"};
	json_t *ranks = json_object_get(j, "ranks"), *a, *v;
	struct columns *t;
	char rk[24], at[24], ex[24], mem[48];
	size_t i;

	if (json_integer_value(json_object_get(j, "nodes")) <= 1 ||
	    json_array_size(ranks) == 0)
		return;
	printf("ranks of attempt %lld (%lld nodes):\n",
	       (long long)json_integer_value(json_object_get(j, "attempt")),
	       (long long)json_integer_value(json_object_get(j, "nodes")));
	t = columns_new(6, head);
	json_array_foreach(ranks, i, a)
	{
		snprintf(
		    rk, sizeof(rk), "%lld",
		    (long long)json_integer_value(json_object_get(a, "rank")));
		snprintf(at, sizeof(at), "%lld",
		         (long long)json_integer_value(
		             json_object_get(a, "attempt")));
		v = json_object_get(a, "exit_code");
		if (json_is_integer(v))
			snprintf(ex, sizeof(ex), "%lld",
			         (long long)json_integer_value(v));
		else if (json_is_integer(json_object_get(a, "signal")))
			snprintf(ex, sizeof(ex), "signal %lld",
			         (long long)json_integer_value(
			             json_object_get(a, "signal")));
		else
			snprintf(ex, sizeof(ex), "-");
		v = json_object_get(a, "peak_memory_bytes");
		if (json_is_number(v))
			fmt_size(mem, sizeof(mem), json_number_value(v));
		else
			snprintf(mem, sizeof(mem), "-");
		const char *row[] = {
		    rk, at, str(a, "agent", "-"), str(a, "state", "-"),
		    ex, mem};
		columns_add(t, row);
	}
	columns_print(t, stdout);
	columns_free(t);
}

/* " (pending: Resources)" while the launcher queues it (Slurm). */
static void print_substate(json_t *o)
{
	if (!json_is_string(json_object_get(o, "substate")))
		return;
	printf(" (%s", str(o, "substate", ""));
	if (json_is_string(json_object_get(o, "substate_reason")))
		printf(": %s", str(o, "substate_reason", ""));
	printf(")");
}

/* The phase durations in the order the phases run, then any others. */
static void print_durations(json_t *d)
{
	static const char *const order[] = {"queued", "source",  "env",
	                                    "run",    "outputs", NULL};
	const char *k;
	json_t *v;
	int i;

	for (i = 0; order[i] != NULL; i++) {
		v = json_object_get(d, order[i]);
		if (json_is_number(v))
			printf("  %-12s %.2f s\n", order[i],
			       json_number_value(v));
	}
	json_object_foreach(d, k, v)
	{
		for (i = 0; order[i] != NULL && strcmp(order[i], k) != 0; i++)
			;
		if (order[i] == NULL && json_is_number(v))
			printf("  %-12s %.2f s\n", k, json_number_value(v));
	}
}

static void print_attempt(json_t *a, bool rank_shown)
{
	json_t *d = json_object_get(a, "durations"), *v;

	printf("attempt %lld on %s: %s",
	       (long long)json_integer_value(json_object_get(a, "attempt")),
	       str(a, "agent", "?"), str(a, "state", "?"));
	if (rank_shown)
		printf(" (rank %lld)", (long long)json_integer_value(
		                           json_object_get(a, "rank")));
	print_substate(a);
	printf("\n");
	print_num("exit code", json_object_get(a, "exit_code"), "");
	print_num("signal", json_object_get(a, "signal"), "");
	print_size("peak memory", json_object_get(a, "peak_memory_bytes"));
	v = json_object_get(a, "cpu_seconds");
	if (json_is_number(v))
		printf("  %-12s %.2f s\n", "cpu", json_number_value(v));
	print_size("log", json_object_get(a, "log_length"));
	v = json_object_get(a, "log_final_length");
	if (json_is_integer(v) &&
	    json_is_false(json_object_get(a, "log_complete")))
		printf("  %-12s incomplete: %lld of %lld bytes arrived, the "
		       "rest is on its way from the agent\n",
		       "",
		       (long long)json_integer_value(
		           json_object_get(a, "log_length")),
		       (long long)json_integer_value(v));
	print_num("progress", json_object_get(a, "progress"), "");
	v = json_object_get(a, "checkpoint");
	if (json_is_object(v))
		printf(
		    "  %-12s %.12s (%lld bytes)\n", "checkpoint",
		    str(v, "sha256", "?"),
		    (long long)json_integer_value(json_object_get(v, "size")));
	if (json_is_string(json_object_get(a, "commit")))
		printf("  %-12s %s\n", "commit", str(a, "commit", ""));
	if (json_is_string(json_object_get(a, "message")))
		printf("  %-12s %s\n", "message", str(a, "message", ""));
	print_durations(d);
}

static int cmd_status(struct cmd_ctx *c, int argc, char **argv)
{
	char path[64];
	json_t *j = NULL, *a;
	int64_t job;
	size_t i;
	int rc;

	if (argc != 2 || (job = cli_parse_id(argv[1])) < 0)
		cli_usage_error("tether status", "expected one job id");
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)job);
	if ((rc = api_json(c, "GET", path, NULL, &j)) != EXIT_OK)
		return rc;
	if (c->json) {
		cli_print_json(j);
	} else {
		printf("job %lld (%s): %s", (long long)job, str(j, "name", "?"),
		       str(j, "state", "?"));
		print_substate(j);
		printf("\n");
		if (json_is_string(json_object_get(j, "queue_reason")))
			printf("  %s\n", str(j, "queue_reason", ""));
		print_ranks(j);
		json_array_foreach(json_object_get(j, "attempts"), i, a)
		{
			print_attempt(a, json_integer_value(
			                     json_object_get(j, "nodes")) > 1);
		}
	}
	json_decref(j);
	return EXIT_OK;
}

const struct cmd_entry cmd_status_entry = {
    "status", "JOB", "show a job: state, reason, attempts, resources used",
    cmd_status};
