/* slurm-resume.c: what a restarted runner needs to follow the same job.
 *
 * slurm.json keeps the Slurm job id, the log size at which the job's output
 * began (log_start) and the last state seen.  On reattach the job's output
 * file is compared with the log from log_start on (through the same secret
 * masking), so following resumes at the first byte the log lacks: nothing
 * lost, nothing twice. */
#include "runner/slurm/slurm.h"
#include "runner/runner.h"
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int slurm_json_save(struct slurm_job *j, struct err *e)
{
	json_t *o;
	char *text;
	int r;

	pthread_mutex_lock(&j->lock);
	o = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:b, s:I}", "job_id",
	              j->job_id, "log_start", (json_int_t)j->log_start,
	              "out_start", (json_int_t)j->out_start, "peak_rss",
	              (json_int_t)j->peak_rss, "state", j->info.state, "reason",
	              j->info.reason, "node", j->info.node, "known",
	              j->info.known, "updated_ms", (json_int_t)now_wall_ms());
	text = json_dump_canon(o);
	r = file_write_atomic(j->json_file, text, strlen(text), 0600, e);
	pthread_mutex_unlock(&j->lock);
	free(text);
	json_decref(o);
	return r;
}

int slurm_json_load(struct slurm_job *j, struct err *e)
{
	char *text = NULL;
	const char *id = NULL;
	json_t *o = NULL;
	int64_t start = -1, out_start = 0, peak = -1;
	size_t len;
	int r;

	if ((r = file_read_all(j->json_file, 65536, &text, &len, e)) < 0 ||
	    (r = json_parse(text, len, 4, &o, e)) < 0 ||
	    (r = json_get_str(o, "slurm.json", "job_id", true, 63, &id, e)) <
	        0 ||
	    (r = json_get_int(o, "slurm.json", "log_start", false, -1,
	                      INT64_MAX, &start, e)) < 0 ||
	    (r = json_get_int(o, "slurm.json", "out_start", false, 0, INT64_MAX,
	                      &out_start, e)) < 0 ||
	    (r = json_get_int(o, "slurm.json", "peak_rss", false, -1, INT64_MAX,
	                      &peak, e)) < 0)
		goto out;
	snprintf(j->job_id, sizeof(j->job_id), "%s", id);
	j->log_start = start;
	j->out_start = out_start;
	j->peak_rss = peak;
out:
	json_decref(o);
	free(text);
	return r;
}

/* line with every secret value replaced by "***" (as the log masker
 * does); a fresh heap string. */
static char *mask_line(const struct jobspec *spec, const char *line, size_t len,
                       size_t *out_len)
{
	char *s;

	if (memchr(line, '\0', len) != NULL) { /* binary: compare raw */
		s = xcalloc(1, len + 1);
		memcpy(s, line, len);
		*out_len = len;
		return s;
	}
	s = strndup(line, len);
	for (size_t i = 0; spec != NULL && i < spec->nsecrets; i++) {
		const char *v = spec->secrets[i].value, *hit;
		size_t vl = v != NULL ? strlen(v) : 0;
		if (vl == 0)
			continue;
		while ((hit = strstr(s, v)) != NULL) {
			char *n =
			    xasprintf("%.*s***%s", (int)(hit - s), s, hit + vl);
			free(s);
			s = n;
		}
	}
	*out_len = strlen(s);
	return s;
}

/* Bytes of a equal to the start of b. */
static size_t common_prefix(const char *a, size_t alen, const char *b,
                            size_t blen)
{
	size_t n = 0;

	while (n < alen && n < blen && a[n] == b[n])
		n++;
	return n;
}

/* Walk the output file line by line against the log; *offset gets the
 * bytes of output the log already holds. */
static void match_output(struct runner *r, FILE *out, FILE *logf,
                         int64_t *offset)
{
	char *line = NULL, *logbuf = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, out)) > 0) {
		size_t mlen, got;
		char *m = mask_line(r->spec, line, (size_t)n, &mlen);
		bool plain = mlen == (size_t)n && memcmp(m, line, mlen) == 0;
		logbuf = realloc(logbuf, mlen + 1);
		got = fread(logbuf, 1, mlen, logf);
		if (got == mlen && memcmp(m, logbuf, mlen) == 0) {
			*offset += n;
			free(m);
			continue;
		}
		if (plain)
			*offset += (int64_t)common_prefix(line, (size_t)n,
			                                  logbuf, got);
		free(m);
		break;
	}
	free(line);
	free(logbuf);
}

int slurm_follow_resume_offset(struct slurm_job *j, struct runner *r,
                               struct err *e)
{
	char *log_path = attempt_path(r->dir, ATTEMPT_LOG);
	FILE *out = NULL, *logf = NULL;
	int rc = 0, fd = -1;

	j->out_offset = j->out_start;
	if (j->log_start < 0)
		goto done; /* no output was delivered since out_start */
	if ((fd = slurm_open_job_file(j->out_file)) < 0 ||
	    (out = fdopen(fd, "rb")) == NULL) {
		if (fd >= 0)
			close(fd);
		goto done; /* the job has not written yet */
	}
	if (fseeko(out, j->out_start, SEEK_SET) < 0) {
		rc = err_sys(e, TERR_IO, "seek %s", j->out_file);
		goto done;
	}
	if ((logf = fopen(log_path, "rbe")) == NULL) {
		rc = err_sys(e, TERR_IO, "open %s", log_path);
		goto done;
	}
	if (fseeko(logf, j->log_start, SEEK_SET) < 0) {
		rc = err_sys(e, TERR_IO, "seek %s", log_path);
		goto done;
	}
	match_output(r, out, logf, &j->out_offset);
done:
	if (out != NULL)
		fclose(out);
	if (logf != NULL)
		fclose(logf);
	free(log_path);
	return rc;
}
