/* cmd-outputs.c: tether outputs JOB [--attempt N] [--download DIR]
 *
 * Downloads are checked: each path must be relative and normalised (the
 * workspace's list is not trusted blindly), each file lands through a
 * temporary name and is renamed only when its sha256 matches. */
#include "cli/cli.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/sha256.h"
#include "common/util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fetch_one(struct cmd_ctx *c, int64_t job, int64_t att, json_t *o,
                     const char *dir)
{
	const char *p = json_string_value(json_object_get(o, "path"));
	const char *want = json_string_value(json_object_get(o, "sha256"));
	char *dst, *tmp, *parent, *url, *esc, got[SHA256_HEX_LEN + 1];
	struct http_reply r;
	struct err e = {0};
	FILE *f;
	int rc = EXIT_FAILED;

	if (p == NULL || want == NULL || !path_is_safe_relative(p)) {
		fprintf(stderr, "tether: refusing output path '%s'\n",
		        p ? p : "?");
		return EXIT_FAILED;
	}
	dst = xasprintf("%s/%s", dir, p);
	tmp = xasprintf("%s.tether-part", dst);
	parent = xstrdup(dst);
	esc = curl_easy_escape(NULL, p, 0);
	url = xasprintf("/api/v1/jobs/%lld/outputs/%s?attempt=%lld",
	                (long long)job, esc, (long long)att);
	/* curl_easy_escape escapes '/', which the server decodes again */
	if (mkdir_p(dirname(parent), 0755, &e) < 0 ||
	    (f = fopen(tmp, "wbx")) == NULL) {
		fprintf(stderr, "tether: %s: %s\n", tmp,
		        e.msg[0] ? e.msg : "cannot create");
		goto out;
	}
	rc = http_download(c, url, f, &r, &e);
	fclose(f);
	if (rc < 0 || r.status != 200) {
		rc = api_fail(c, &r, &e, rc);
		http_reply_free(&r);
		unlink(tmp);
		goto out;
	}
	http_reply_free(&r);
	if (sha256_file(tmp, got, NULL, &e) < 0 || strcmp(got, want) != 0) {
		fprintf(stderr, "tether: %s: sha256 mismatch, not kept\n", p);
		unlink(tmp);
		rc = EXIT_FAILED;
		goto out;
	}
	rc = rename(tmp, dst) == 0 ? EXIT_OK : EXIT_FAILED;
	if (rc == EXIT_OK && !c->json)
		printf("%s\n", dst);
out:
	curl_free(esc);
	free(url);
	free(dst);
	free(tmp);
	free(parent);
	return rc;
}

static void print_list(json_t *r)
{
	json_t *o;
	size_t i;

	json_array_foreach(json_object_get(r, "outputs"), i, o)
	{
		printf(
		    "%12lld  %.12s  %s\n",
		    (long long)json_integer_value(json_object_get(o, "size")),
		    json_string_value(json_object_get(o, "sha256")),
		    json_string_value(json_object_get(o, "path")));
	}
}

static int cmd_outputs(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {
	    {"download", required_argument, 0, 'd'},
	    {"attempt", required_argument, 0, 'a'},
	    {0, 0, 0, 0}};
	const char *dir = NULL;
	int64_t job, att = 0;
	json_t *r = NULL, *o;
	char path[128];
	size_t i;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "d:a:", lo, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'a' && (att = cli_parse_id(optarg)) > 0)
			continue;
		else
			cli_usage_error("tether outputs", "bad option '%s'",
			                cli_bad_option(argc, argv));
	}
	if (optind + 1 != argc || (job = cli_parse_id(argv[optind])) < 0)
		cli_usage_error("tether outputs", "expected one job id");
	if (att > 0)
		snprintf(path, sizeof(path),
		         "/api/v1/jobs/%lld/outputs?attempt=%lld",
		         (long long)job, (long long)att);
	else
		snprintf(path, sizeof(path), "/api/v1/jobs/%lld/outputs",
		         (long long)job);
	if ((rc = api_json(c, "GET", path, NULL, &r)) != EXIT_OK)
		return rc;
	att = json_integer_value(json_object_get(r, "attempt"));
	if (c->json)
		cli_print_json(r);
	else if (dir == NULL)
		print_list(r);
	json_array_foreach(json_object_get(r, "outputs"), i, o)
	{
		if (dir != NULL && rc == EXIT_OK)
			rc = fetch_one(c, job, att, o, dir);
	}
	json_decref(r);
	return rc;
}

const struct cmd_entry cmd_outputs_entry = {
    "outputs", "JOB [--attempt N] [--download DIR]",
    "list a job's output files, or download them (sha256-checked)",
    cmd_outputs};
