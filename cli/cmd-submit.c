/* cmd-submit.c: tether submit job.json [--dir SRC] [--follow]
 *                                     [--max-size SIZE] [--resume-from JOB]
 *
 * The spec is checked locally with the same parser the workspace uses, so
 * a mistake is named before anything is uploaded.  --dir packs SRC
 * (honouring .gitignore and .tetherignore), uploads it as a snapshot and
 * sets source.snapshot.  --resume-from JOB sets checkpoint.resume_from:
 * the job starts from JOB's newest kept checkpoint.  --follow prints the
 * log until the job ends and exits with the job's result. */
#include "cli/cli.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/json.h"
#include "common/util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct submit_opts {
	const char *file, *dir;
	bool follow;
	int64_t max_size, resume_from;
};

static int load_spec(struct cmd_ctx *c, const char *file, json_t **out)
{
	struct jobspec *s = NULL;
	struct err e = {0};
	char *text = NULL;
	size_t n;
	int r;

	if ((r = file_read_all(file, 1 << 20, &text, &n, &e)) < 0 ||
	    (r = json_parse(text, n, 16, out, &e)) < 0 ||
	    (r = jobspec_parse_json(*out, &s, &e)) < 0) {
		fprintf(stderr, "%s: %s: %s\n", c->prog, file, e.msg);
		json_decref(*out);
		*out = NULL;
		free(text);
		return r == TERR_IO || r == TERR_NOTFOUND ? EXIT_FAILED
		                                          : EXIT_REJECTED;
	}
	jobspec_free(s);
	free(text);
	return EXIT_OK;
}

/* Pack and upload dir; sets spec.source = {"snapshot": id}. */
static int upload_dir(struct cmd_ctx *c, const char *dir, int64_t max,
                      json_t *spec)
{
	const char *td = getenv("TMPDIR");
	char *tmp = xasprintf("%s/tether-snapshot.XXXXXX", td ? td : "/tmp");
	struct http_reply r = {0};
	struct err e = {0};
	json_t *b = NULL;
	int fd = mkstemp(tmp), rc;

	if (fd < 0) {
		fprintf(stderr, "%s: cannot create %s\n", c->prog, tmp);
		free(tmp);
		return EXIT_FAILED;
	}
	close(fd);
	if ((rc = pack_dir(dir, tmp, max, &e)) < 0) {
		fprintf(stderr, "%s: --dir %s: %s\n", c->prog, dir, e.msg);
		rc = rc == TERR_TOOBIG ? EXIT_REJECTED : EXIT_FAILED;
		goto out;
	}
	rc = http_upload(c, "/api/v1/snapshots", tmp, &r, &e);
	if (rc < 0 || r.status != 201) {
		rc = api_fail(c, &r, &e, rc);
		goto out;
	}
	b = json_loadb(r.body.data, r.body.len, 0, NULL);
	if (!json_is_string(json_object_get(b, "id"))) {
		rc = EXIT_FAILED;
		goto out;
	}
	json_object_set_new(
	    spec, "source",
	    json_pack("{s:O}", "snapshot", json_object_get(b, "id")));
	if (!c->json)
		fprintf(
		    stderr, "uploaded %s as snapshot %.12s (%lld bytes)\n", dir,
		    json_string_value(json_object_get(b, "id")),
		    (long long)json_integer_value(json_object_get(b, "size")));
	rc = EXIT_OK;
out:
	json_decref(b);
	http_reply_free(&r);
	unlink(tmp);
	free(tmp);
	return rc;
}

/* Set spec.checkpoint.resume_from, keeping the other checkpoint keys. */
static void resume_from(json_t *spec, int64_t job)
{
	json_t *ck = json_object_get(spec, "checkpoint");

	if (!json_is_object(ck)) {
		ck = json_object();
		json_object_set_new(spec, "checkpoint", ck);
	}
	json_object_set_new(ck, "resume_from", json_integer(job));
}

static void parse(int argc, char **argv, struct submit_opts *o)
{
	static const struct option lo[] = {
	    {"dir", required_argument, 0, 'd'},
	    {"follow", no_argument, 0, 'f'},
	    {"max-size", required_argument, 0, 'm'},
	    {"resume-from", required_argument, 0, 'r'},
	    {0, 0, 0, 0}};
	int ch;

	o->max_size = 256LL << 20;
	while ((ch = getopt_long(argc, argv, "d:fm:r:", lo, NULL)) != -1) {
		if (ch == 'r' &&
		    parse_i64(optarg, 1, INT64_MAX, &o->resume_from, NULL) == 0)
			continue;
		if (ch == 'r')
			cli_usage_error("tether submit",
			                "--resume-from '%s': expected a job id",
			                optarg);
		if (ch == 'd')
			o->dir = optarg;
		else if (ch == 'f')
			o->follow = true;
		else if (ch == 'm' &&
		         parse_size(optarg, &o->max_size, NULL) == 0)
			continue;
		else
			cli_usage_error("tether submit", "bad option '%s'",
			                cli_bad_option(argc, argv));
	}
	if (optind + 1 != argc)
		cli_usage_error("tether submit", "expected one job spec file");
	o->file = argv[optind];
}

static int cmd_submit(struct cmd_ctx *c, int argc, char **argv)
{
	struct submit_opts o = {0};
	json_t *spec = NULL, *r = NULL;
	char *state = NULL;
	int64_t id;
	int rc;

	parse(argc, argv, &o);
	if ((rc = load_spec(c, o.file, &spec)) != EXIT_OK)
		return rc;
	if (o.resume_from > 0)
		resume_from(spec, o.resume_from);
	if (o.dir != NULL &&
	    (rc = upload_dir(c, o.dir, o.max_size, spec)) != EXIT_OK)
		goto out;
	if ((rc = api_json(c, "POST", "/api/v1/jobs", spec, &r)) != EXIT_OK)
		goto out;
	id = json_integer_value(json_object_get(r, "id"));
	if (c->json)
		cli_print_json(r);
	else if (o.follow)
		fprintf(stderr, "job %lld submitted\n", (long long)id);
	else
		printf("job %lld submitted\n", (long long)id);
	if (o.follow) {
		rc = follow_log(c, id, 0, true, stdout, &state);
		if (rc == EXIT_OK) {
			fprintf(stderr, "job %lld: %s\n", (long long)id,
			        state ? state : "?");
			rc = exit_for_state(state);
		}
	}
out:
	free(state);
	json_decref(spec);
	json_decref(r);
	return rc;
}

const struct cmd_entry cmd_submit_entry = {
    "submit",
    "JOB.json [--dir SRC] [--follow] [--max-size SIZE] [--resume-from JOB]",
    "submit a job; --dir uploads SRC as its source; --resume-from starts "
    "it from JOB's kept checkpoint; --follow prints the log and exits with "
    "the job's result",
    cmd_submit};
