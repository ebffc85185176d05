/* cmd-metrics.c: tether metrics JOB [-f] [--name NAME] [--attempt N]
 *
 * A table of the job's metric series (docs/protocol.md "Metrics"): the last
 * value and its step, min, max, the number of points and a sparkline of
 * the curve.  -f follows: it long-polls with `since` and merges the new
 * rows into what it holds, redrawing the table, until the job ends.  With
 * --json it prints the workspace's reply (-f: each reply, one a line). */
#include "cli/cli.h"
#include "common/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPARK_WIDTH 32

static const char *const spark[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};

/* The values of a series' rows (the last point of each bucket) drawn in
 * at most SPARK_WIDTH block characters, low to high. */
static void sparkline(json_t *rows, struct buf *out)
{
	size_t n = json_array_size(rows), w = n < SPARK_WIDTH ? n : SPARK_WIDTH;
	double lo = 0, hi = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		double v = json_number_value(
		    json_array_get(json_array_get(rows, i), 4));
		if (i == 0 || v < lo)
			lo = v;
		if (i == 0 || v > hi)
			hi = v;
	}
	for (i = 0; i < w; i++) {
		/* the last row of the i-th of w equal slices */
		size_t k = (i + 1) * n / w - 1;
		double v = json_number_value(
		    json_array_get(json_array_get(rows, k), 4));
		int level =
		    hi > lo ? (int)((v - lo) / (hi - lo) * 7.0 + 0.5) : 3;
		buf_printf(out, NULL, "%s", spark[level]);
	}
}

static char *num(json_t *v)
{
	if (json_is_integer(v))
		return xasprintf("%lld", (long long)json_integer_value(v));
	if (json_is_number(v))
		return xasprintf("%.6g", json_number_value(v));
	return xstrdup("-");
}

static int by_name(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(json_string_value(json_object_get(x, "name")),
	               json_string_value(json_object_get(y, "name")));

	if (c != 0)
		return c;
	return (int)(json_integer_value(json_object_get(x, "attempt")) -
	             json_integer_value(json_object_get(y, "attempt")));
}

static void print_table(json_t *held, FILE *out)
{
	static const char *const head[] = {"SERIES", "ATTEMPT", "LAST",
	                                   "STEP",   "MIN",     "MAX",
	                                   "COUNT",  "CURVE"};
	struct columns *t = columns_new(8, head);
	size_t n = json_object_size(held), i = 0, k;
	json_t **list = xcalloc(n ? n : 1, sizeof(*list)), *s;
	const char *key;

	json_object_foreach(held, key, s) list[i++] = s;
	qsort(list, n, sizeof(*list), by_name);
	for (i = 0; i < n; i++) {
		json_t *last = json_object_get(list[i], "last");
		struct buf sp;
		char *cell[6];
		const char *row[8];

		buf_init(&sp, 1 << 12);
		sparkline(json_object_get(list[i], "points"), &sp);
		cell[0] = num(json_object_get(list[i], "attempt"));
		cell[1] = num(json_object_get(last, "value"));
		cell[2] = num(json_object_get(last, "step"));
		cell[3] = num(json_object_get(list[i], "min"));
		cell[4] = num(json_object_get(list[i], "max"));
		cell[5] = num(json_object_get(list[i], "count"));
		row[0] = json_string_value(json_object_get(list[i], "name"));
		for (k = 0; k < 6; k++)
			row[k + 1] = cell[k];
		row[7] = sp.data ? sp.data : "";
		columns_add(t, row);
		for (k = 0; k < 6; k++)
			free(cell[k]);
		buf_free(&sp);
	}
	if (n == 0)
		fprintf(out, "no metrics yet\n");
	else
		columns_print(t, out);
	fflush(out);
	columns_free(t);
	free(list);
}

/* Merge a reply's series into held (name/attempt -> series): rows from
 * the first returned row's start on are replaced by the returned ones. */
static void merge(json_t *held, json_t *reply)
{
	size_t i, k;
	json_t *s;

	json_array_foreach(json_object_get(reply, "series"), i, s)
	{
		char *key = xasprintf(
		    "%s/%lld", json_string_value(json_object_get(s, "name")),
		    (long long)json_integer_value(
		        json_object_get(s, "attempt")));
		json_t *old = json_object_get(held, key);
		json_t *rows = json_object_get(s, "points"), *keep;
		json_int_t first = json_integer_value(
		    json_array_get(json_array_get(rows, 0), 0));

		if (old != NULL && json_array_size(rows) > 0) {
			json_t *r;
			keep = json_array();
			json_array_foreach(json_object_get(old, "points"), k, r)
			{
				if (json_integer_value(json_array_get(r, 0)) <
				    first)
					json_array_append(keep, r);
			}
			json_array_extend(keep, rows);
			json_object_set_new(s, "points", keep);
		}
		json_object_set(held, key, s);
		free(key);
	}
}

static char *metrics_path(int64_t job, const char *name, int64_t att,
                          int64_t since, int wait)
{
	char *esc = name ? curl_easy_escape(NULL, name, 0) : NULL;
	char *p =
	    xasprintf("/api/v1/jobs/%lld/metrics?since=%lld&wait=%d%s%s"
	              "&attempt=%lld",
	              (long long)job, (long long)since, wait,
	              esc ? "&name=" : "", esc ? esc : "", (long long)att);

	curl_free(esc);
	if (att == 0) /* every attempt: no attempt argument */
		*strstr(p, "&attempt=") = '\0';
	return p;
}

/* Is the job over?  -1: could not tell (rc set). */
static int job_ended(struct cmd_ctx *c, int64_t job, int *rc)
{
	char path[64];
	json_t *j = NULL;
	const char *st;
	int ended;

	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)job);
	if ((*rc = api_json(c, "GET", path, NULL, &j)) != EXIT_OK)
		return -1;
	st = json_string_value(json_object_get(j, "state"));
	ended = st && strcmp(st, "queued") && strcmp(st, "assigned") &&
	        strcmp(st, "running") && strcmp(st, "cancelling");
	json_decref(j);
	return ended;
}

static int show(struct cmd_ctx *c, int64_t job, const char *name, int64_t att,
                bool follow)
{
	json_t *held = json_object(), *r = NULL;
	int64_t since = 0;
	bool tty = isatty(STDOUT_FILENO), first = true;
	int rc = EXIT_OK, ended = 0;

	for (;;) {
		char *path = metrics_path(job, name, att, since,
		                          follow && !first ? 30 : 0);
		rc = api_json(c, "GET", path, NULL, &r);
		free(path);
		if (rc != EXIT_OK)
			break;
		if (c->json && (first || json_array_size(json_object_get(
		                             r, "series")) > 0)) {
			char *t = json_dumps(r, follow ? JSON_COMPACT
			                               : JSON_INDENT(2) |
			                                     JSON_SORT_KEYS);
			printf("%s\n", t);
			fflush(stdout);
			free(t);
		} else if (!c->json &&
		           (first || json_array_size(
		                         json_object_get(r, "series")) > 0)) {
			merge(held, r);
			if (tty && follow)
				printf("\033[H\033[J");
			else if (!first)
				printf("\n");
			print_table(held, stdout);
		}
		since = json_integer_value(json_object_get(r, "cursor"));
		json_decref(r);
		r = NULL;
		first = false;
		if (!follow || ended)
			break;
		if ((ended = job_ended(c, job, &rc)) < 0)
			break;
		/* once it ended: one more read for the last points */
	}
	json_decref(held);
	return rc;
}

static int cmd_metrics(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {
	    {"follow", no_argument, 0, 'f'},
	    {"name", required_argument, 0, 'n'},
	    {"attempt", required_argument, 0, 'a'},
	    {0, 0, 0, 0}};
	const char *name = NULL;
	bool follow = false;
	int64_t job, att = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "fn:a:", lo, NULL)) != -1) {
		if (ch == 'f')
			follow = true;
		else if (ch == 'n')
			name = optarg;
		else if (ch == 'a' && (att = cli_parse_id(optarg)) > 0)
			continue;
		else
			cli_usage_error("tether metrics", "bad option '%s'",
			                cli_bad_option(argc, argv));
	}
	if (optind + 1 != argc || (job = cli_parse_id(argv[optind])) < 0)
		cli_usage_error("tether metrics", "expected one job id");
	return show(c, job, name, att, follow);
}

const struct cmd_entry cmd_metrics_entry = {
    "metrics", "JOB [-f] [--name N] [--attempt N]",
    "a job's metrics: last value, min, max, count and a sparkline per "
    "series; -f follows them until the job ends",
    cmd_metrics};
