#include "common/util.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out,
              struct err *e)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return err_set(e, TERR_INVAL, "empty number");
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end != '\0' || end == s)
		return err_set(e, TERR_INVAL, "'%s' is not a whole number", s);
	if (v < min || v > max)
		return err_set(e, TERR_INVAL, "%s is out of range [%lld, %lld]",
		               s, (long long)min, (long long)max);
	*out = v;
	return 0;
}

int parse_double(const char *s, double min, double max, double *out,
                 struct err *e)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return err_set(e, TERR_INVAL, "empty number");
	errno = 0;
	v = strtod(s, &end);
	if (errno == ERANGE || *end != '\0' || end == s || !isfinite(v))
		return err_set(e, TERR_INVAL, "'%s' is not a number", s);
	if (v < min || v > max)
		return err_set(e, TERR_INVAL, "%s is out of range [%g, %g]", s,
		               min, max);
	*out = v;
	return 0;
}

/* Split "12.5xyz" into a number and its suffix. */
static int split_unit(const char *s, double *num, const char **unit,
                      struct err *e)
{
	char *end;

	if (s == NULL || *s == '\0')
		return err_set(e, TERR_INVAL, "empty value");
	errno = 0;
	*num = strtod(s, &end);
	if (end == s || errno == ERANGE || !isfinite(*num) || *num < 0)
		return err_set(e, TERR_INVAL,
		               "'%s' does not start with a "
		               "non-negative number",
		               s);
	*unit = end;
	return 0;
}

int parse_duration_ms(const char *s, int64_t *out_ms, struct err *e)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"", 1000},   {"s", 1000},    {"ms", 1},
	             {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	const char *unit = "";
	double num = 0;
	int r;

	if ((r = split_unit(s, &num, &unit, e)) < 0)
		return r;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			double v = num * units[i].ms;
			if (v > 9e15)
				return err_set(e, TERR_INVAL,
				               "duration '%s' is too long", s);
			*out_ms = (int64_t)llround(v);
			return 0;
		}
	}
	return err_set(e, TERR_INVAL,
	               "'%s': unknown duration unit (use ms, s, m, h or d)", s);
}

int parse_size(const char *s, int64_t *out, struct err *e)
{
	static const char suffixes[] = "KMGTP";
	const char *unit = "", *p;
	double num = 0, mult = 1;
	int r;

	if ((r = split_unit(s, &num, &unit, e)) < 0)
		return r;
	if (*unit != '\0') {
		p = strchr(suffixes, unit[0] & ~0x20);
		if (p == NULL ||
		    (unit[1] != '\0' && strcmp(unit + 1, "i") &&
		     strcmp(unit + 1, "iB") && strcmp(unit + 1, "B")))
			return err_set(e, TERR_INVAL,
			               "'%s': unknown size unit (use K, M, G "
			               "or T)",
			               s);
		for (long i = 0; i <= p - suffixes; i++)
			mult *= 1024;
	}
	if (num * mult > 9e18)
		return err_set(e, TERR_INVAL, "size '%s' is too large", s);
	*out = (int64_t)llround(num * mult);
	return 0;
}

int parse_bool(const char *s, bool *out, struct err *e)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return err_set(e, TERR_INVAL, "'%s' is not a boolean (yes or no)", s);
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t now_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

static void oom_abort(void)
{
	fputs("tether: out of memory\n", stderr);
	abort();
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom_abort();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (p == NULL)
		oom_abort();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom_abort();
	return p;
}

void freezero(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

void freezero_str(char *s)
{
	if (s != NULL)
		freezero(s, strlen(s));
}

size_t str_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins)
			                   : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(prev));
	}
	return prev[lb];
}

bool str_near(const char *word, const char *cand, size_t *best)
{
	size_t len = strlen(word), max = len < 6 ? (len + 1) / 2 : 3;
	size_t d = str_distance(word, cand);

	if (d == 0 || d > max || d >= *best)
		return false;
	*best = d;
	return true;
}

const char *str_nearest(const char *word, const char *const *names)
{
	const char *found = NULL;
	size_t best = SIZE_MAX;

	for (; *names != NULL; names++)
		if (str_near(word, *names, &best))
			found = *names;
	return found;
}

static const char *escape(const char *s, char *out, size_t size, bool quotes)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s != '\0' && n + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		bool special = quotes && (c == '\\' || c == '"');
		if (c >= 0x20 && c != 0x7f && !special) {
			out[n++] = (char)c;
			continue;
		}
		out[n++] = '\\';
		if (special || c == '\n' || c == '\r' || c == '\t') {
			out[n++] = c == '\n'   ? 'n'
			           : c == '\r' ? 'r'
			           : c == '\t' ? 't'
			                       : (char)c;
			continue;
		}
		out[n++] = 'x';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 15];
	}
	if (*s != '\0' && size >= 4) {
		while (n + 4 > size)
			n--;
		memcpy(out + n, "...", 3);
		n += 3;
	}
	if (size > 0)
		out[n < size ? n : size - 1] = '\0';
	return out;
}

const char *str_escape(const char *s, char *out, size_t size)
{
	return escape(s, out, size, true);
}

const char *str_escape_ctl(const char *s, char *out, size_t size)
{
	return escape(s, out, size, false);
}

bool str_kv_field(const char *text, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);

	for (const char *p = text; (p = strstr(p, key)) != NULL; p += klen) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') &&
		    p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, " \n");
			if (n >= size)
				n = size - 1;
			memcpy(out, p + klen + 1, n);
			out[n] = '\0';
			return true;
		}
	}
	return false;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i];
		size_t n;
		unsigned min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, min = 0x80, c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, min = 0x800, c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (p[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

void cli_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; see '%s --help'\n", prog);
	exit(2);
}

const char *cli_bad_option(int argc, char **argv)
{
	extern int optind;
	int i = optind - 1;

	if (i < 1 || i >= argc)
		return "?";
	return argv[i];
}
