/* Unit tests of common/attempt.c: the attempt-directory file formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_lease_cancel_state(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX", reason[32], *text = NULL;
	struct attempt_state st = {0}, back;
	struct err e = {0};
	int64_t v, grace;
	int fd;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(attempt_lease_read(dir, &v, &e), TERR_NOTFOUND);
	assert_int_equal(attempt_lease_write(dir, 123456, 1790000000000, &e),
	                 0);
	assert_int_equal(attempt_lease_read(dir, &v, &e), 0);
	assert_int_equal(v, 123456);

	assert_int_equal(attempt_cancel_read(dir, reason, &grace, &e),
	                 TERR_NOTFOUND);
	assert_int_equal(attempt_cancel_write(dir, "timed_out", 2500, &e), 0);
	assert_int_equal(attempt_cancel_read(dir, reason, &grace, &e), 0);
	assert_string_equal(reason, "timed_out");
	assert_int_equal(grace, 2500);

	st.runner_pid = getpid();
	st.runner_start = proc_start_time(getpid());
	assert_true(st.runner_start > 0);
	snprintf(st.phase, sizeof(st.phase), "run");
	snprintf(st.launcher_ref, sizeof(st.launcher_ref), "abc123");
	assert_int_equal(attempt_state_write(dir, &st, &e), 0);
	assert_int_equal(attempt_state_read(dir, &back, &e), 0);
	assert_int_equal(back.runner_pid, getpid());
	assert_string_equal(back.phase, "run");
	assert_string_equal(back.launcher_ref, "abc123");
	assert_true(attempt_runner_alive(&back));
	back.runner_start++;
	assert_false(attempt_runner_alive(&back)); /* pid reuse detected */

	char *path = attempt_path(dir, ATTEMPT_EVENTS);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	json_t *ev = json_pack("{s:i, s:s}", "seq", 1, "type", "started");
	assert_int_equal(attempt_event_append(fd, ev, &e), 0);
	assert_int_equal(attempt_event_append(fd, ev, &e), 0);
	json_decref(ev);
	close(fd);
	assert_int_equal(file_read_all(path, 4096, &text, NULL, &e), 0);
	assert_string_equal(text, "{\"seq\":1,\"type\":\"started\"}\n"
	                          "{\"seq\":1,\"type\":\"started\"}\n");
	free(text);
	free(path);
	assert_int_equal(rm_rf(dir, &e), 0);
}

/* Durations are written as people read them (issue 28): 300.348, not
 * 300.34800000000001; times keep their milliseconds. */
static void test_event_reals(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX", *text = NULL, *path;
	struct err e = {0};
	json_t *ev;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = attempt_path(dir, ATTEMPT_EVENTS);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	ev = json_pack("{s:i, s:{s:f, s:f}, s:f}", "seq", 2, "durations", "run",
	               300348 / 1000.0, "env", 0.1 + 0.2, "time",
	               1790000012.345);
	assert_int_equal(attempt_event_append(fd, ev, &e), 0);
	json_decref(ev);
	close(fd);
	assert_int_equal(file_read_all(path, 4096, &text, NULL, &e), 0);
	assert_string_equal(text, "{\"durations\":{\"env\":0.3,\"run\":"
	                          "300.348},\"seq\":2,\"time\":"
	                          "1790000012.345}\n");
	free(text);
	free(path);
	assert_int_equal(rm_rf(dir, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lease_cancel_state),
	    cmocka_unit_test(test_event_reals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
