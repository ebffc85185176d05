/* metrics.c: metric points from the job's output stream (docs/metrics.md).
 *
 * The run loop hands every read of the job's pipe here as well as to the
 * log (supervisor-loop.c): no second read, and the log's bytes are not
 * touched.  Sources, first one that claims a line wins:
 *   - `TETHER_METRIC name=value [name=value ...] [step=N]` (always on);
 *   - JSON objects on one line, their numeric top-level fields
 *     (metrics.json_lines; `step` is the step);
 *   - a PCRE2 regex with named groups (metrics.regex; the `step` group is
 *     the step), its first match in the line, under match and depth limits.
 * Only the first METRICS_LINE_MAX bytes of a line are kept: a longer line
 * gives no points (its value may be cut), and memory stays bounded however
 * long it is.  Points go out as `metrics` events (common/attempt.h's events
 * file, shipped by the agent like the others): at most one event per
 * METRICS_EVENT_MS or per METRICS_EVENT_POINTS points, at most
 * METRICS_RATE points a second; points over the rate are counted in the
 * event's `dropped`.  A point whose line, name or value holds a secret's
 * value is dropped (the log masks the same text). */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/metrics/metric-name.h"
#include "runner/supervisor/supervisor.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define METRIC_PREFIX "TETHER_METRIC "

struct point {
	char name[METRICS_NAME_MAX + 1];
	double value;
	int64_t step; /* -1: none */
	double time;
};

/* The current line of one stream. */
struct linebuf {
	char line[METRICS_LINE_MAX + 1];
	size_t len;
	bool skip; /* the rest of the current line is not looked at */
};

struct metrics {
	struct runner *r;
	struct linebuf job; /* the job's output */
	struct linebuf aux; /* the launcher's TETHER_METRIC lines */
	bool any;           /* regex or json_lines: every line is a candidate */
	pcre2_code *re;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	int re_limit_hits;
	struct point pts[METRICS_EVENT_POINTS];
	size_t npts, bytes;
	int64_t first_ms;   /* CLOCK_MONOTONIC of the oldest pending point */
	int64_t dropped;    /* over the rate cap, not yet reported */
	int64_t window_ms;  /* start of the current rate window */
	int64_t window_pts; /* points accepted in it */
	int64_t total;      /* points accepted in this runner */
};

static double wall_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void metrics_regex_init(struct metrics *m, const char *pattern)
{
	struct err e = {0};
	void *code = NULL;

	if (jobspec_metrics_compile(pattern, &code, &e) < 0) {
		/* checked at submit: only an older spec gets here */
		runner_logf(m->r, "tether", "metrics.regex ignored: %s", e.msg);
		return;
	}
	m->re = code;
	m->md = pcre2_match_data_create_from_pattern(m->re, NULL);
	m->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(m->mctx, METRICS_REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(m->mctx, METRICS_REGEX_DEPTH_LIMIT);
	pcre2_set_heap_limit(m->mctx, METRICS_REGEX_HEAP_KIB);
}

struct metrics *metrics_new(struct runner *r)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	m->r = r;
	m->first_ms = -1;
	if (r->spec != NULL && r->spec->metrics.regex != NULL)
		metrics_regex_init(m, r->spec->metrics.regex);
	m->any =
	    m->re != NULL || (r->spec != NULL && r->spec->metrics.json_lines);
	if (r->spec != NULL && r->spec->metrics.tensorboard != NULL &&
	    r->launcher != LAUNCHER_SANDBOX)
		runner_logf(
		    r, "tether",
		    "metrics.tensorboard is read under the sandbox "
		    "launcher only: no TensorBoard points for this job");
	return m;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	pcre2_match_data_free(m->md);
	pcre2_match_context_free(m->mctx);
	pcre2_code_free(m->re);
	free(m);
}

/* Whether text[0, n) holds the value of one of the job's secrets. */
static bool has_secret(const struct metrics *m, const char *text, size_t n)
{
	const struct jobspec *s = m->r->spec;

	for (size_t i = 0; s != NULL && i < s->nsecrets; i++) {
		const char *v = s->secrets[i].value;
		if (v != NULL && v[0] != '\0' && memmem(text, n, v, strlen(v)))
			return true;
	}
	return false;
}

/* A whole token as a finite number. */
static bool parse_value(const char *s, size_t n, double *out)
{
	char buf[64], *end;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	return end == buf + n && isfinite(*out) &&
	       !isspace((unsigned char)*buf);
}

static bool parse_step(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;

	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* One point of the current line into the batch (under the rate cap);
 * false when the name or value is refused. */
static bool metrics_add(struct metrics *m, const char *name, size_t nlen,
                        double value, int64_t step, double now_wall,
                        int64_t now_ms)
{
	char vtext[40];
	struct point *p;
	int vn;

	if (!metrics_name_ok(name, nlen) || !isfinite(value))
		return false;
	if (m->r->spec != NULL && m->r->spec->nsecrets > 0) {
		vn = snprintf(vtext, sizeof(vtext), "%.15g", value);
		if (has_secret(m, name, nlen) ||
		    has_secret(m, vtext, (size_t)vn))
			return false;
	}
	if (now_ms - m->window_ms >= 1000) {
		m->window_ms = now_ms;
		m->window_pts = 0;
	}
	if (m->window_pts >= METRICS_RATE || m->total >= METRICS_MAX_TOTAL) {
		m->dropped++;
		return true;
	}
	m->window_pts++;
	m->total++;
	if (m->npts == METRICS_EVENT_POINTS ||
	    m->bytes + nlen + 96 > METRICS_EVENT_BYTES)
		metrics_report(m, now_ms, true);
	p = &m->pts[m->npts++];
	memcpy(p->name, name, nlen);
	p->name[nlen] = '\0';
	p->value = value;
	p->step = step;
	p->time = now_wall;
	m->bytes += nlen + 96;
	if (m->first_ms < 0)
		m->first_ms = now_ms;
	return true;
}

/* `TETHER_METRIC a=1 b=2 step=3`: the step first, then the points; a
 * token that is not name=number is skipped, a bad step drops the line. */
static void metric_line(struct metrics *m, char *s, size_t n)
{
	double now_wall = wall_now(), v;
	int64_t now_ms = now_mono_ms(), step = -1;
	const char *end = s + n, *t;

	for (int pass = 0; pass < 2; pass++) {
		for (t = s; t < end;) {
			const char *te, *eq;
			while (t < end && isspace((unsigned char)*t))
				t++;
			for (te = t; te < end && !isspace((unsigned char)*te);)
				te++;
			eq = memchr(t, '=', (size_t)(te - t));
			if (eq != NULL && eq - t == 4 &&
			    memcmp(t, "step", 4) == 0) {
				if (pass == 0 &&
				    !parse_step(eq + 1, (size_t)(te - eq - 1),
				                &step))
					return;
			} else if (eq != NULL && pass == 1 &&
			           parse_value(eq + 1, (size_t)(te - eq - 1),
			                       &v)) {
				metrics_add(m, t, (size_t)(eq - t), v, step,
				            now_wall, now_ms);
			}
			t = te;
		}
	}
}

/* A JSON object's numeric top-level fields. */
static bool json_line(struct metrics *m, const char *s, size_t n)
{
	double now_wall = wall_now();
	int64_t now_ms = now_mono_ms(), step = -1;
	json_t *o = NULL, *v, *st;
	const char *key;

	if (json_parse(s, n, 4, &o, NULL) < 0 || !json_is_object(o)) {
		json_decref(o);
		return false;
	}
	st = json_object_get(o, "step");
	if (json_is_integer(st) && json_integer_value(st) >= 0)
		step = json_integer_value(st);
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "step") != 0 && json_is_number(v))
			metrics_add(m, key, strlen(key), json_number_value(v),
			            step, now_wall, now_ms);
	}
	json_decref(o);
	return true;
}

/* The text of the named group `want` when it took part in the match
 * (*txt stays NULL when not). */
static void regex_group(const char *s, const PCRE2_SIZE *ov, int rc,
                        PCRE2_SPTR table, uint32_t count, uint32_t esize,
                        const char *want, const char **txt, PCRE2_SIZE *len)
{
	for (uint32_t i = 0; i < count; i++) {
		const PCRE2_UCHAR *ent = table + i * esize;
		int g = (ent[0] << 8) | ent[1];

		if (strcmp((const char *)ent + 2, want) != 0)
			continue;
		if (g < rc && ov[2 * g] != PCRE2_UNSET) {
			*txt = s + ov[2 * g];
			*len = ov[2 * g + 1] - ov[2 * g];
		}
	}
}

/* The regex's first match: each named group that took part is a point
 * (the `step` group the step).  A line that runs into the match limits
 * gives nothing; after METRICS_REGEX_MAX_HITS of them the regex is off. */
static void regex_line(struct metrics *m, const char *s, size_t n)
{
	double now_wall = wall_now(), v;
	int64_t now_ms = now_mono_ms(), step = -1;
	uint32_t count = 0, esize = 0;
	PCRE2_SPTR table = NULL;
	PCRE2_SIZE *ov, step_len = 0;
	const char *step_txt = NULL;
	int rc;

	rc = pcre2_match(m->re, (PCRE2_SPTR)s, n, 0, 0, m->md, m->mctx);
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT) {
		if (++m->re_limit_hits >= METRICS_REGEX_MAX_HITS) {
			/* said in the log when the job ended (metrics_finish):
			 * a line now could split one of the job's lines */
			pcre2_code_free(m->re);
			m->re = NULL;
			m->any = m->r->spec->metrics.json_lines;
		}
		return;
	}
	if (rc < 0)
		return;
	ov = pcre2_get_ovector_pointer(m->md);
	pcre2_pattern_info(m->re, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(m->re, PCRE2_INFO_NAMEENTRYSIZE, &esize);
	pcre2_pattern_info(m->re, PCRE2_INFO_NAMETABLE, &table);
	regex_group(s, ov, rc, table, count, esize, "step", &step_txt,
	            &step_len);
	if (step_txt != NULL && !parse_step(step_txt, step_len, &step))
		return;
	/* the points in the order of the groups in the pattern (the name
	 * table is sorted by name) */
	for (int g = 1; g < rc; g++) {
		for (uint32_t i = 0; i < count; i++) {
			const PCRE2_UCHAR *ent = table + i * esize;
			const char *name = (const char *)ent + 2;
			PCRE2_SIZE a = ov[2 * g], b = ov[2 * g + 1];

			if (((ent[0] << 8) | ent[1]) != g || a == PCRE2_UNSET ||
			    strcmp(name, "step") == 0)
				continue;
			if (parse_value(s + a, b - a, &v))
				metrics_add(m, name, strlen(name), v, step,
				            now_wall, now_ms);
		}
	}
}

/* One complete line (without its newline); aux: only TETHER_METRIC. */
static void metrics_line(struct metrics *m, struct linebuf *lb, bool aux)
{
	size_t plen = strlen(METRIC_PREFIX), n = lb->len;
	char *s = lb->line;
	const char *j = s;

	while (n > 0 && s[n - 1] == '\r')
		n--;
	s[n] = '\0';
	if (has_secret(m, s, n))
		return; /* the log shows it masked: no point of it */
	if (n > plen && memcmp(s, METRIC_PREFIX, plen) == 0) {
		metric_line(m, s + plen, n - plen);
		return;
	}
	if (aux)
		return;
	while (isspace((unsigned char)*j))
		j++;
	if (*j == '{' && m->r->spec->metrics.json_lines && json_line(m, s, n))
		return;
	if (m->re != NULL)
		regex_line(m, s, n);
}

static void metrics_scan(struct metrics *m, struct linebuf *lb, bool aux,
                         const char *data, size_t n)
{
	size_t plen = strlen(METRIC_PREFIX);
	const char *s = data, *end = data + n;
	bool any = m->any && !aux;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t seg = (size_t)((nl != NULL ? nl : end) - s);

		/* not a metric line: decided on its first bytes, uncopied */
		if (!lb->skip && !any && lb->len < plen &&
		    memcmp(s, METRIC_PREFIX + lb->len,
		           seg < plen - lb->len ? seg : plen - lb->len) != 0)
			lb->skip = true;
		if (!lb->skip && lb->len + seg > METRICS_LINE_MAX) {
			lb->skip = true; /* too long: no points from it */
		} else if (!lb->skip) {
			memcpy(lb->line + lb->len, s, seg);
			lb->len += seg;
		}
		if (nl == NULL)
			break;
		if (!lb->skip)
			metrics_line(m, lb, aux);
		lb->len = 0;
		lb->skip = false;
		s = nl + 1;
	}
}

void metrics_feed(struct metrics *m, const char *data, size_t n)
{
	metrics_scan(m, &m->job, false, data, n);
}

void metrics_feed_aux(struct metrics *m, const char *data, size_t n)
{
	metrics_scan(m, &m->aux, true, data, n);
}

static json_t *point_json(const struct point *p)
{
	json_t *o = json_pack("{s:s, s:f, s:f}", "name", p->name, "value",
	                      p->value, "time", p->time);

	if (p->step >= 0)
		json_object_set_new(o, "step", json_integer(p->step));
	return o;
}

void metrics_report(struct metrics *m, int64_t now_ms, bool force)
{
	struct err e = {0};
	json_t *ev, *pts;

	if (m->npts == 0 && m->dropped == 0)
		return;
	if (!force && m->first_ms >= 0 &&
	    now_ms - m->first_ms < METRICS_EVENT_MS)
		return;
	if (!force && m->npts == 0 && now_ms - m->window_ms < METRICS_EVENT_MS)
		return;
	pts = json_array();
	for (size_t i = 0; i < m->npts; i++)
		json_array_append_new(pts, point_json(&m->pts[i]));
	ev = json_pack("{s:s, s:o, s:I}", "type", "metrics", "points", pts,
	               "dropped", (json_int_t)m->dropped);
	if (runner_event(m->r, ev, &e) < 0)
		log_warn("job=%s metrics event: %s", m->r->job_id, e.msg);
	json_decref(ev);
	m->npts = 0;
	m->bytes = 0;
	m->dropped = 0;
	m->first_ms = -1;
}

void metrics_finish(struct metrics *m)
{
	metrics_report(m, now_mono_ms(), true);
	if (m->re_limit_hits >= METRICS_REGEX_MAX_HITS)
		runner_logf(
		    m->r, "tether",
		    "metrics.regex hit PCRE2's match limits on %d lines: "
		    "it was turned off for the rest of the job",
		    m->re_limit_hits);
}

int metrics_wait_ms(const struct metrics *m, int64_t now_ms)
{
	int64_t w;

	if (m->npts == 0 && m->dropped == 0)
		return FENCE_CHECK_MS;
	w = (m->first_ms >= 0 ? m->first_ms : m->window_ms) + METRICS_EVENT_MS -
	    now_ms;
	return w < 0 ? 0 : (int)w;
}
