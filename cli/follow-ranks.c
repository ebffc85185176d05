/* follow-ranks.c: `tether logs --all-ranks`: every rank's log of one gang
 * (docs/multi-node.md), interleaved line by line, each line prefixed
 * "[rank k] ".  The CLI reads the ranks in turn, rank 0 first, each from
 * its own offset (GET /jobs/{id}/log?attempt=G&rank=k), and prints a line
 * once it is whole, so lines of two ranks never mix: lines appear in the
 * order their bytes reached the CLI, which is not the order the ranks
 * wrote them.  A line still without its newline when its rank's log is
 * complete (or longer than LINE_MAX_PART) is printed with a newline added.
 * With the prefix and that newline the output is not byte-exact; one
 * rank's bytes are (`tether logs --rank k`). */
#include "cli/cli.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_PART (64 * 1024)
#define STALL_MS      (120 * 1000)

struct rank_log {
	int64_t off;     /* bytes read */
	int64_t length;  /* Tether-Log-Length of the last read */
	int64_t final;   /* Tether-Log-Final-Length, -1: not ended */
	int64_t end;     /* without -f: read up to here (-1: not known) */
	bool complete;   /* Tether-Log-Complete */
	bool done;       /* without -f: read as far as it stood */
	struct buf part; /* the start of a line without its newline yet */
};

static int put_line(FILE *out, int64_t rank, const char *p, size_t n,
                    bool add_nl)
{
	fprintf(out, "[rank %lld] ", (long long)rank);
	if ((n > 0 && fwrite(p, 1, n, out) != n) ||
	    (add_nl && fputc('\n', out) == EOF) || ferror(out)) {
		fprintf(stderr, "tether: cannot write the log: output error\n");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

/* Print the whole lines of part; with flush, what is left as well. */
static int emit(FILE *out, int64_t rank, struct buf *part, bool flush)
{
	size_t start = 0;
	const char *nl;
	int rc = EXIT_OK;

	while (rc == EXIT_OK && start < part->len &&
	       (nl = memchr(part->data + start, '\n', part->len - start))) {
		rc = put_line(out, rank, part->data + start,
		              (size_t)(nl - part->data) - start + 1, false);
		start = (size_t)(nl - part->data) + 1;
	}
	if (rc == EXIT_OK && start < part->len &&
	    (flush || part->len - start >= LINE_MAX_PART)) {
		rc = put_line(out, rank, part->data + start, part->len - start,
		              true);
		start = part->len;
	}
	buf_consume(part, start);
	fflush(out);
	return rc;
}

static int64_t header_num(const char *v)
{
	int64_t n;

	return v != NULL && parse_i64(v, 0, INT64_MAX, &n, NULL) == 0 ? n : -1;
}

/* One read of rank k of gang g from its offset; *got: bytes that came. */
static int read_rank(struct cmd_ctx *c, int64_t job, int64_t g, int64_t k,
                     struct rank_log *l, FILE *out, size_t *got)
{
	struct http_reply r;
	struct err e = {0};
	char path[200];
	int rc;

	snprintf(path, sizeof(path),
	         "/api/v1/jobs/%lld/log?attempt=%lld&rank=%lld&offset=%lld",
	         (long long)job, (long long)g, (long long)k, (long long)l->off);
	rc = http_call(c, "GET", path, NULL, 0, NULL, 90, &r, &e);
	if (rc < 0 || r.status != 200) {
		rc = api_fail(c, &r, &e, rc);
		http_reply_free(&r);
		return rc;
	}
	*got = r.body.len;
	l->off += (int64_t)r.body.len;
	l->length = header_num(r.log_length);
	l->final = header_num(r.final_length);
	l->complete = r.complete;
	rc = buf_append(&l->part, r.body.data ? r.body.data : "", r.body.len,
	                NULL) < 0
	         ? EXIT_FAILED
	         : emit(out, k, &l->part, l->complete);
	http_reply_free(&r);
	return rc;
}

static void ranks_free(struct rank_log *ls, int64_t n)
{
	for (int64_t k = 0; ls != NULL && k < n; k++)
		buf_free(&ls[k].part);
	free(ls);
}

static struct rank_log *ranks_new(int64_t n)
{
	struct rank_log *ls = xcalloc((size_t)n, sizeof(*ls));

	for (int64_t k = 0; k < n; k++) {
		ls[k].final = -1;
		ls[k].end = -1;
		/* a reply (8 MiB at most) after a part line */
		buf_init(&ls[k].part, (16 << 20) + LINE_MAX_PART);
	}
	return ls;
}

/* One turn over every rank not yet complete (nor done): *got: bytes in
 * all; *all: every log is complete or done. */
static int turn(struct cmd_ctx *c, int64_t job, int64_t g, int64_t nodes,
                struct rank_log *ls, FILE *out, size_t *got, bool *all)
{
	int rc = EXIT_OK;

	*got = 0;
	*all = true;
	for (int64_t k = 0; k < nodes && rc == EXIT_OK; k++) {
		size_t n = 0;
		if (ls[k].complete || ls[k].done)
			continue;
		rc = read_rank(c, job, g, k, &ls[k], out, &n);
		*got += n;
		*all = *all && (ls[k].complete || ls[k].done);
	}
	return rc;
}

/* Some rank's attempt ended with bytes of its log still missing. */
static bool missing(const struct rank_log *ls, int64_t nodes)
{
	for (int64_t k = 0; k < nodes; k++)
		if (!ls[k].complete && ls[k].final >= 0)
			return true;
	return false;
}

static int incomplete(int64_t job, int64_t g, const struct rank_log *ls,
                      int64_t nodes, const char *why)
{
	for (int64_t k = 0; k < nodes; k++)
		if (!ls[k].complete && ls[k].final >= 0) {
			fprintf(stderr,
			        "tether: the log of job %lld attempt %lld rank "
			        "%lld is incomplete: %lld of its %lld bytes "
			        "have reached the workspace (%s)\n",
			        (long long)job, (long long)g, (long long)k,
			        (long long)ls[k].off, (long long)ls[k].final,
			        why);
			return EXIT_FAILED;
		}
	return EXIT_OK;
}

/* Flush every rank's last partial line. */
static int flush_all(struct rank_log *ls, int64_t nodes, FILE *out)
{
	int rc = EXIT_OK;

	for (int64_t k = 0; k < nodes && rc == EXIT_OK; k++)
		rc = emit(out, k, &ls[k].part, true);
	return rc;
}

/* Without follow: every rank's log as it stands now. */
static int read_all_once(struct cmd_ctx *c, int64_t job, int64_t g,
                         int64_t nodes, struct rank_log *ls, FILE *out)
{
	size_t got;
	bool all;
	int rc;

	do {
		if ((rc = turn(c, job, g, nodes, ls, out, &got, &all)) !=
		    EXIT_OK)
			return rc;
		/* stop at the length first seen: a live log grows */
		for (int64_t k = 0; k < nodes; k++) {
			if (ls[k].end < 0)
				ls[k].end = ls[k].length;
			if (ls[k].off >= ls[k].end)
				ls[k].done = true;
		}
	} while (!all && got > 0);
	if ((rc = flush_all(ls, nodes, out)) != EXIT_OK)
		return rc;
	return EXIT_OK;
}

int follow_all_ranks(struct cmd_ctx *c, int64_t job, int64_t attempt,
                     bool follow, FILE *out, char **state)
{
	int64_t g = 0, nodes = 1, latest = 0, n2, stall_since = 0;
	struct rank_log *ls = NULL;
	size_t got;
	bool all;
	int rc;

	if ((rc = job_state(c, job, state, &g, &nodes)) != EXIT_OK)
		return rc;
	if (attempt > 0)
		g = attempt;
	for (;;) {
		if (g == 0 && !follow)
			return EXIT_OK; /* no attempt yet: an empty log */
		if (g == 0) {
			if (!job_state_live(*state))
				return EXIT_OK;
			usleep(300 * 1000);
			if ((rc = job_state(c, job, state, &g, &nodes)) !=
			    EXIT_OK)
				return rc;
			continue;
		}
		ranks_free(ls, nodes);
		ls = ranks_new(nodes);
		if (!follow) {
			rc = read_all_once(c, job, g, nodes, ls, out);
			if (rc == EXIT_OK)
				rc =
				    incomplete(job, g, ls, nodes,
				               "still arriving from the agent; "
				               "'tether logs -f' waits for "
				               "the rest");
			goto out;
		}
		for (;;) {
			if ((rc = turn(c, job, g, nodes, ls, out, &got,
			               &all)) != EXIT_OK)
				goto out;
			if (all)
				break;
			if (got > 0) {
				stall_since = 0;
				continue;
			}
			usleep(300 * 1000);
			if (!missing(ls, nodes)) {
				stall_since = 0;
			} else if (stall_since == 0) {
				stall_since = now_mono_ms();
			} else if (now_mono_ms() - stall_since > STALL_MS) {
				rc = incomplete(job, g, ls, nodes,
				                "no more bytes came for 2 "
				                "minutes");
				goto out;
			}
		}
		if ((rc = flush_all(ls, nodes, out)) != EXIT_OK ||
		    (rc = job_state(c, job, state, &latest, &n2)) != EXIT_OK)
			goto out;
		if (attempt == 0 && latest > g) {
			fprintf(stderr,
			        "tether: attempt %lld ended; following attempt "
			        "%lld\n",
			        (long long)g, (long long)latest);
			g = latest;
			continue;
		}
		if (!job_state_live(*state))
			goto out;
		usleep(300 * 1000); /* requeued: wait for the next gang */
		for (int64_t k = 0; k < nodes; k++)
			ls[k].complete = false;
	}
out:
	ranks_free(ls, nodes);
	return rc;
}
