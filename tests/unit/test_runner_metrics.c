/* Unit tests of the metric parser (runner/supervisor/metrics.c) and the
 * TensorBoard record checksum (runner/metrics/tb-reader.c).  The black-box
 * tests (tests/bb/test_metrics_node.py) run the same through a real job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/util.h"
#include "runner/metrics/tb-reader.h"
#include "runner/runner.h"
#include "runner/supervisor/supervisor.h"

static void test_crc32c(void **state)
{
	const uint8_t check[] = "123456789";

	(void)state;
	/* the CRC-32C check value (RFC 3720, B.4) */
	assert_int_equal(tb_crc32c(check, 9), 0xe3069283u);
	assert_int_equal(tb_crc32c(check, 0), 0);
	/* TensorFlow's mask: rotate right by 15, add 0xa282ead8 */
	assert_int_equal(tb_masked_crc(check, 9),
	                 ((0xe3069283u >> 15) | (0xe3069283u << 17)) +
	                     0xa282ead8u);
}

static void test_names(void **state)
{
	char long_name[130];

	(void)state;
	assert_true(metrics_name_ok("loss", 4));
	assert_true(metrics_name_ok("train/loss:avg-1.x_y", 20));
	assert_false(metrics_name_ok("", 0));
	assert_false(metrics_name_ok("a b", 3));
	assert_false(metrics_name_ok("a=b", 3));
	assert_false(metrics_name_ok("l\xc3\xb6ss", 5));
	memset(long_name, 'n', sizeof(long_name));
	assert_true(metrics_name_ok(long_name, 128));
	assert_false(metrics_name_ok(long_name, 129));
}

/* Feed text to a runner of the spec and return the events file. */
static char *run_feed(const char *spec_json, const char *const *chunks)
{
	char path[] = "/tmp/tmetricsXXXXXX", *out = NULL;
	struct runner r = {.log_fd = -1, .idle_watch_fd = -1};
	struct err e = {0};
	struct metrics *m;
	size_t len;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(
	    jobspec_parse(spec_json, strlen(spec_json), &r.spec, &e), 0);
	r.events_fd = fd;
	r.next_seq = 1;
	r.job_id = "1";
	r.launcher = LAUNCHER_SANDBOX;
	m = metrics_new(&r);
	for (; *chunks != NULL; chunks++)
		metrics_feed(m, *chunks, strlen(*chunks));
	metrics_report(m, now_mono_ms(), true);
	metrics_free(m);
	assert_int_equal(file_read_all(path, 1 << 20, &out, &len, &e), 0);
	unlink(path);
	close(fd);
	jobspec_free(r.spec);
	return out;
}

/* A line split over reads is one line; points keep the step of their
 * line; a catastrophic regex gives nothing and does not hang (PCRE2's
 * match limits), and a line over 4 KiB is not looked at. */
static void test_parse(void **state)
{
	static char big[8192];
	const char *spec = "{\"name\":\"m\",\"command\":[\"a\"],\"metrics\":"
	                   "{\"regex\":\"^(?P<x>(a|aa)+)$\"}}";
	const char *chunks[] = {"TETHER_MET",
	                        "RIC loss=0.5 st",
	                        "ep=3\nTETHER",
	                        "_METRIC acc=1\n",
	                        NULL,
	                        NULL,
	                        NULL};
	char *ev;

	(void)state;
	ev = run_feed("{\"name\":\"m\",\"command\":[\"a\"]}", chunks);
	assert_non_null(strstr(ev, "\"name\":\"loss\",\"step\":3"));
	assert_non_null(strstr(ev, "\"name\":\"acc\",\"time\""));
	assert_non_null(strstr(ev, "\"dropped\":0"));
	assert_non_null(strstr(ev, "\"type\":\"metrics\""));
	free(ev);

	memset(big, 'a', 3000);
	big[3000] = '!';
	big[3001] = '\n';
	chunks[0] = big;
	chunks[1] = "TETHER_METRIC after=1\n";
	chunks[2] = NULL;
	ev = run_feed(spec, chunks);
	assert_non_null(strstr(ev, "\"name\":\"after\""));
	assert_null(strstr(ev, "\"name\":\"x\""));
	free(ev);

	memset(big, ' ', sizeof(big) - 2);
	memcpy(big, "TETHER_METRIC long=1", 20);
	big[sizeof(big) - 2] = '\n';
	chunks[0] = big;
	ev = run_feed("{\"name\":\"m\",\"command\":[\"a\"]}", chunks);
	assert_null(strstr(ev, "\"name\":\"long\""));
	assert_non_null(strstr(ev, "\"name\":\"after\""));
	free(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
