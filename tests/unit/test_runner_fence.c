/* Unit tests of runner/fence.c: when a job must stop (cancel
 * file, lease deadline on CLOCK_MONOTONIC, timeout) and how long the
 * supervisor may sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/util.h"
#include "runner/fence.h"
#include "runner/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_no_files(void **state)
{
	char dir[] = "/tmp/tfenceXXXXXX";
	struct fence f;

	assert_non_null(mkdtemp(dir));
	fence_init(&f);
	fence_reload(&f, dir);
	assert_null(fence_check(&f, 1000000));
	assert_int_equal(fence_wait_ms(&f, 0), FENCE_CHECK_MS);
	rmdir(dir);
}

static void test_lease(void **state)
{
	char dir[] = "/tmp/tfenceXXXXXX";
	struct err e = {0};
	struct fence f;

	assert_non_null(mkdtemp(dir));
	fence_init(&f);
	assert_int_equal(attempt_lease_write(dir, 5000, 1, &e), 0);
	fence_reload(&f, dir);
	assert_null(fence_check(&f, 4999));
	assert_string_equal(fence_check(&f, 5000), "lost");
	assert_int_equal(fence_wait_ms(&f, 4700), 300);
	assert_int_equal(fence_wait_ms(&f, 6000), 0);
	/* A renewal moves the deadline. */
	assert_int_equal(attempt_lease_write(dir, 9000, 1, &e), 0);
	fence_reload(&f, dir);
	assert_null(fence_check(&f, 5000));
	assert_int_equal(fence_wait_ms(&f, 5000), FENCE_CHECK_MS);
	/* A removed lease file means no lease. */
	char *p = attempt_path(dir, ATTEMPT_LEASE);
	unlink(p);
	free(p);
	fence_reload(&f, dir);
	assert_null(fence_check(&f, 100000));
	assert_int_equal(rm_rf(dir, &e), 0);
}

static void test_cancel_wins(void **state)
{
	char dir[] = "/tmp/tfenceXXXXXX";
	struct err e = {0};
	struct fence f;

	assert_non_null(mkdtemp(dir));
	fence_init(&f);
	f.timeout_deadline_ms = 100;
	assert_string_equal(fence_check(&f, 100), "timed_out");
	assert_int_equal(attempt_lease_write(dir, 50, 1, &e), 0);
	fence_reload(&f, dir);
	assert_string_equal(fence_check(&f, 100), "lost");
	assert_int_equal(attempt_cancel_write(dir, "preempted", 1500, &e), 0);
	fence_reload(&f, dir);
	assert_string_equal(fence_check(&f, 0), "preempted");
	assert_int_equal(f.cancel_grace_ms, 1500);
	/* The first cancel reason sticks. */
	assert_int_equal(attempt_cancel_write(dir, "cancelled", 1, &e), 0);
	fence_reload(&f, dir);
	assert_string_equal(fence_check(&f, 0), "preempted");
	assert_int_equal(rm_rf(dir, &e), 0);
}

static void test_hang(void **state)
{
	struct fence f;

	fence_init(&f);
	f.hang_ms = 2000;
	f.last_output_ms = 10000;
	assert_null(fence_check(&f, 11999));
	assert_int_equal(fence_wait_ms(&f, 11500), 500);
	assert_string_equal(fence_check(&f, 12000), "hung");
	f.last_output_ms = 11900; /* output arrived: the clock restarts */
	assert_null(fence_check(&f, 12000));
}

/* runner_open_files() as the supervisor calls it at start: the attempt's
 * start from the events file it reads, then closed again. */
static void open_close(struct runner *r)
{
	struct err e = {0};

	assert_int_equal(runner_open_files(r, &e), 0);
	runner_close_files(r);
}

/* The timeout counts from the attempt's first event (an earlier runner's,
 * for a restarted one), else from now (attempt-clock.c, runner-io.c). */
static void test_attempt_start(void **state)
{
	char dir[] = "/tmp/tfenceXXXXXX";
	char line[128], *path, *log;
	struct jobspec spec = {.timeout_ms = 0};
	struct runner r = {
	    .spec = &spec, .log_fd = -1, .events_fd = -1, .idle_watch_fd = -1};
	struct err e = {0};
	int64_t before;

	assert_non_null(mkdtemp(dir));
	r.dir = dir;
	before = now_mono_ms();
	open_close(&r); /* no events file: now */
	assert_true(r.attempt_started_ms >= before &&
	            r.attempt_started_ms <= now_mono_ms());
	assert_int_equal(runner_timeout_deadline(&r), -1); /* no timeout */
	spec.timeout_ms = 4000;
	assert_int_equal(runner_timeout_deadline(&r),
	                 r.attempt_started_ms + 4000);

	/* the first line is 5 s old: the deadline is 5 s nearer */
	snprintf(line, sizeof(line),
	         "{\"seq\":1,\"type\":\"phase\",\"time\":%.3f}\n"
	         "{\"seq\":2,\"time\":%.3f}\n",
	         (double)now_wall_ms() / 1000.0 - 5.0,
	         (double)now_wall_ms() / 1000.0);
	path = attempt_path(dir, ATTEMPT_EVENTS);
	assert_int_equal(file_write_atomic(path, line, strlen(line), 0600, &e),
	                 0);
	before = now_mono_ms();
	open_close(&r);
	assert_true(r.attempt_started_ms <= before - 4900);
	assert_true(r.attempt_started_ms >= before - 5100);
	assert_int_equal(r.next_seq, 3); /* and the sequence goes on */

	/* a first event from the future (the clock stepped back): now */
	snprintf(line, sizeof(line), "{\"seq\":1,\"time\":%.3f}\n",
	         (double)now_wall_ms() / 1000.0 + 60.0);
	assert_int_equal(file_write_atomic(path, line, strlen(line), 0600, &e),
	                 0);
	before = now_mono_ms();
	open_close(&r);
	assert_true(r.attempt_started_ms >= before);
	log = attempt_path(dir, ATTEMPT_LOG);
	unlink(log);
	unlink(path);
	free(log);
	free(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_files),      cmocka_unit_test(test_lease),
	    cmocka_unit_test(test_cancel_wins),   cmocka_unit_test(test_hang),
	    cmocka_unit_test(test_attempt_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
