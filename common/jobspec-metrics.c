/* jobspec-metrics.c: the job spec's `metrics` object (docs/metrics.md).
 *
 * The sources of metric points besides the always-on `TETHER_METRIC`
 * lines: a regex with named groups (PCRE2), JSON lines, and TensorBoard
 * event files under the outputs.  The regex is compiled here once so that
 * a pattern PCRE2 refuses is a 400 at submit, not a failed attempt. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "common/err.h"
#include "common/jobspec.h"
#include "common/json.h"

#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#define METRICS_MAX_REGEX 4096
#define METRICS_MAX_PATH  1024

int jobspec_metrics_compile(const char *pattern, void **out, struct err *e)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE at = 0;
	uint32_t names = 0;
	int code = 0;
	pcre2_code *re;

	re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
	                   PCRE2_NEVER_BACKSLASH_C, &code, &at, NULL);
	if (re == NULL) {
		pcre2_get_error_message(code, msg, sizeof(msg));
		return err_set(
		    e, TERR_INVAL,
		    "metrics.regex: does not compile at offset %zu: %s",
		    (size_t)at, (const char *)msg);
	}
	pcre2_pattern_info(re, PCRE2_INFO_NAMECOUNT, &names);
	if (names == 0) {
		pcre2_code_free(re);
		return err_set(e, TERR_INVAL,
		               "metrics.regex: has no named group: name the "
		               "values, e.g. (?P<loss>[0-9.e+-]+)");
	}
	if (out != NULL)
		*out = re;
	else
		pcre2_code_free(re);
	return 0;
}

int jobspec_parse_metrics(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const keys[] = {"regex", "json_lines", "tensorboard",
	                                   NULL};
	json_t *m = json_object_get(root, "metrics");
	int r;

	if (m == NULL || json_is_null(m))
		return 0;
	if ((r = json_check_keys(m, "metrics", keys, e)) < 0 ||
	    (r = json_get_str(m, "metrics", "regex", false, METRICS_MAX_REGEX,
	                      &s->metrics.regex, e)) < 0 ||
	    (r = json_get_bool(m, "metrics", "json_lines", false,
	                       &s->metrics.json_lines, e)) < 0 ||
	    (r = json_get_str(m, "metrics", "tensorboard", false,
	                      METRICS_MAX_PATH, &s->metrics.tensorboard, e)) <
	        0)
		return r;
	if (s->metrics.regex != NULL &&
	    (r = jobspec_metrics_compile(s->metrics.regex, NULL, e)) < 0)
		return r;
	if (s->metrics.tensorboard != NULL &&
	    !path_is_safe_relative(s->metrics.tensorboard))
		return err_set(e, TERR_INVAL,
		               "metrics.tensorboard: expected a relative path "
		               "inside the job's outputs, without '..'");
	return 0;
}
