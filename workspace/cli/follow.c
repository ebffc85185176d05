/* follow.c: read a job's log by offset with the long-poll, across
 * attempts (a lost attempt is followed by the next one), until the job
 * ends.  Used by `tether logs -f` and `tether submit --follow`. */
#include "workspace/cli/cli.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const live[] = {"queued", "assigned", "running",
                                   "cancelling", NULL};

static bool is_live(const char *state)
{
	for (int i = 0; live[i]; i++)
		if (strcmp(state, live[i]) == 0)
			return true;
	return false;
}

int exit_for_state(const char *state)
{
	if (state == NULL)
		return EXIT_FAILED;
	if (strcmp(state, "succeeded") == 0)
		return EXIT_OK;
	if (strcmp(state, "cancelled") == 0)
		return EXIT_CANCELLED;
	return EXIT_FAILED;
}

/* The job's state and latest attempt. */
static int job_state(struct cli *c, int64_t job, char **state, int64_t *att)
{
	char path[64];
	json_t *j = NULL;
	const char *s;
	int rc;

	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)job);
	if ((rc = api_json(c, "GET", path, NULL, &j)) != EXIT_OK)
		return rc;
	s = json_string_value(json_object_get(j, "state"));
	free(*state);
	*state = xstrdup(s ? s : "?");
	*att = json_integer_value(json_object_get(j, "attempt"));
	json_decref(j);
	return EXIT_OK;
}

/* One read: bytes go to out; *complete gets the header. */
static int read_once(struct cli *c, int64_t job, int64_t *att, int64_t *off,
                     bool wait, FILE *out, bool *complete)
{
	struct http_reply r;
	struct err e = {0};
	char path[160], attq[48] = "";
	int rc;

	if (*att > 0)
		snprintf(attq, sizeof(attq), "attempt=%lld&", (long long)*att);
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/log?%soffset=%lld%s",
	         (long long)job, attq, (long long)*off, wait ? "&wait=30" : "");
	rc = http_call(c, "GET", path, NULL, 0, NULL, 90, &r, &e);
	if (rc < 0 || r.status != 200) {
		rc = api_fail(c, &r, &e, rc);
		http_reply_free(&r);
		return rc;
	}
	if (r.body.len > 0) {
		fwrite(r.body.data, 1, r.body.len, out);
		fflush(out);
	}
	*off += (int64_t)r.body.len;
	if (*att == 0 && r.attempt != NULL && cli_parse_id(r.attempt) > 0)
		*att = cli_parse_id(r.attempt);
	*complete = r.complete;
	http_reply_free(&r);
	return EXIT_OK;
}

int follow_log(struct cli *c, int64_t job, int64_t attempt, bool follow,
               FILE *out, char **state)
{
	int64_t att = attempt, off = 0, latest = 0;
	bool complete = false;
	int rc;

	for (;;) {
		rc = read_once(c, job, &att, &off, follow, out, &complete);
		if (rc != EXIT_OK)
			return rc;
		if (!follow)
			return job_state(c, job, state, &latest);
		if (!complete)
			continue;
		if ((rc = job_state(c, job, state, &latest)) != EXIT_OK)
			return rc;
		if (attempt == 0 && latest > att) {
			fprintf(stderr,
			        "tether: attempt %lld ended; following attempt "
			        "%lld\n",
			        (long long)att, (long long)latest);
			att = latest;
			off = 0;
		} else if (!is_live(*state)) {
			return EXIT_OK;
		} else {
			usleep(300 * 1000); /* requeued: wait for the lease */
		}
	}
}
