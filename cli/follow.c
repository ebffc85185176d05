/* follow.c: read a job's log by offset with the long-poll, across
 * attempts (a lost attempt is followed by the next one), until the job
 * ends.  Used by `tether logs -f` and `tether submit --follow`. */
#include "cli/cli.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const live[] = {"queued", "assigned", "running",
                                   "cancelling", NULL};

bool job_state_live(const char *state)
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

/* The job's state, its latest attempt (of a multi-node job: its current
 * gang's rank 0) and, when nodes is not NULL, its nodes. */
int job_state(struct cmd_ctx *c, int64_t job, char **state, int64_t *att,
              int64_t *nodes)
{
	char path[64];
	json_t *j = NULL, *n;
	const char *s;
	int rc;

	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)job);
	if ((rc = api_json(c, "GET", path, NULL, &j)) != EXIT_OK)
		return rc;
	s = json_string_value(json_object_get(j, "state"));
	free(*state);
	*state = xstrdup(s ? s : "?");
	*att = json_integer_value(json_object_get(j, "attempt"));
	n = json_object_get(json_object_get(j, "spec"), "nodes");
	if (nodes != NULL)
		*nodes = json_is_integer(n) && json_integer_value(n) > 0
		             ? json_integer_value(n)
		             : 1;
	json_decref(j);
	return EXIT_OK;
}

/* What one read learnt about the attempt's log. */
struct log_read {
	bool complete;     /* Tether-Log-Complete: the whole log is read */
	int64_t length;    /* Tether-Log-Length: bytes stored */
	int64_t final_len; /* Tether-Log-Final-Length, -1: not ended */
	size_t got;        /* bytes in this reply */
};

static int64_t header_num(const char *v)
{
	int64_t n;

	return v != NULL && parse_i64(v, 0, INT64_MAX, &n, NULL) == 0 ? n : -1;
}

/* One read from *off: bytes go to out, *lr gets the headers.  rank >= 0:
 * rank `rank` of *att's gang (of the job's current gang when *att is 0),
 * and *att becomes the attempt read. */
static int read_once(struct cmd_ctx *c, int64_t job, int64_t rank, int64_t *att,
                     int64_t *off, bool wait, FILE *out, struct log_read *lr)
{
	struct http_reply r;
	struct err e = {0};
	char path[200], attq[48] = "", rankq[40] = "";
	int rc;

	if (*att > 0)
		snprintf(attq, sizeof(attq), "attempt=%lld&", (long long)*att);
	if (rank >= 0)
		snprintf(rankq, sizeof(rankq), "rank=%lld&", (long long)rank);
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/log?%s%soffset=%lld%s",
	         (long long)job, attq, rankq, (long long)*off,
	         wait ? "&wait=30" : "");
	/* the bytes go out as they arrive: a follower of a busy log sees
	 * them while an 8 MiB reply is still on its way */
	rc = http_stream(c, path, 90, out, &r, &e);
	*off += r.streamed;
	if (r.out_error) {
		http_reply_free(&r);
		fprintf(stderr, "tether: cannot write the log: output error\n");
		return EXIT_FAILED;
	}
	if (rc < 0 || r.status != 200) {
		rc = api_fail(c, &r, &e, rc);
		http_reply_free(&r);
		return rc;
	}
	if ((*att == 0 || rank >= 0) && r.attempt != NULL &&
	    cli_parse_id(r.attempt) > 0)
		*att = cli_parse_id(r.attempt);
	lr->complete = r.complete;
	lr->length = header_num(r.log_length);
	lr->final_len = header_num(r.final_length);
	lr->got = (size_t)r.streamed;
	http_reply_free(&r);
	return EXIT_OK;
}

/* The attempt ended but the workspace does not hold its whole log yet. */
static int incomplete(int64_t job, int64_t att, int64_t off,
                      const struct log_read *lr, const char *why)
{
	fprintf(stderr,
	        "tether: the log of job %lld attempt %lld is incomplete: "
	        "%lld of its %lld bytes have reached the workspace (%s)\n",
	        (long long)job, (long long)att, (long long)off,
	        (long long)lr->final_len, why);
	return EXIT_FAILED;
}

/* Without -f: the whole log as it stands now, in as many reads as it
 * takes; a failure when the attempt ended with bytes still missing. */
static int read_whole(struct cmd_ctx *c, int64_t job, int64_t att, int64_t rank,
                      FILE *out, char **state)
{
	struct log_read lr = {0};
	int64_t off = 0, end = -1, latest = 0;
	int rc;

	do {
		if ((rc = read_once(c, job, rank, &att, &off, false, out,
		                    &lr)) != EXIT_OK)
			return rc;
		if (end < 0)
			end = lr.length;
	} while (!lr.complete && lr.got > 0 && off < end);
	if ((rc = job_state(c, job, state, &latest, NULL)) != EXIT_OK)
		return rc;
	if (!lr.complete && lr.final_len >= 0)
		return incomplete(job, att, off, &lr,
		                  "still arriving from the agent; "
		                  "'tether logs -f' waits for the rest");
	return EXIT_OK;
}

/* Give up on an ended attempt whose missing bytes stopped arriving. */
#define STALL_MS (120 * 1000)

int follow_log(struct cmd_ctx *c, int64_t job, int64_t attempt, bool follow,
               FILE *out, char **state)
{
	return follow_log_rank(c, job, attempt, -1, follow, out, state);
}

int follow_log_rank(struct cmd_ctx *c, int64_t job, int64_t attempt,
                    int64_t rank, bool follow, FILE *out, char **state)
{
	int64_t att = attempt, off = 0, latest = 0, stall_since = 0;
	struct log_read lr = {0};
	int rc;

	if (!follow)
		return read_whole(c, job, att, rank, out, state);
	for (;;) {
		rc = read_once(c, job, rank, &att, &off, true, out, &lr);
		if (rc != EXIT_OK)
			return rc;
		if (!lr.complete && lr.final_len >= 0 && lr.got == 0) {
			if (stall_since == 0)
				stall_since = now_mono_ms();
			else if (now_mono_ms() - stall_since > STALL_MS)
				return incomplete(job, att, off, &lr,
				                  "no more bytes came for "
				                  "2 minutes");
		} else {
			stall_since = 0;
		}
		if (!lr.complete)
			continue;
		if ((rc = job_state(c, job, state, &latest, NULL)) != EXIT_OK)
			return rc;
		if (attempt == 0 && latest > att) {
			/* a rank r of gang g is attempt g + r < the next
			 * gang's rank 0 */
			fprintf(stderr,
			        "tether: attempt %lld ended; following attempt "
			        "%lld%s\n",
			        (long long)att, (long long)latest,
			        rank > 0 ? "'s gang" : "");
			att = latest;
			off = 0;
		} else if (!job_state_live(*state)) {
			return EXIT_OK;
		} else {
			usleep(300 * 1000); /* requeued: wait for the lease */
		}
	}
}
