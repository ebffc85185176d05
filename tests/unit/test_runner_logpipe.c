/* Unit tests of runner/logpipe.c: pipe -> masker -> log file, in order,
 * bounded reads, the max_log_bytes cap and its marker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "runner/logpipe.h"
#include "runner/mask.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tmp_log(char *path)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	return fd;
}

static char *slurp(const char *path, size_t *len)
{
	char *text = NULL;

	assert_int_equal(file_read_all(path, 1 << 24, &text, len, NULL), 0);
	return text;
}

/* Writes in several pieces (a secret split between two) come out
 * masked and in order; each pump reads at most LOGPIPE_BUF bytes. */
static void test_pump_in_order_masked(void **state)
{
	const char *secrets[] = {"pa55word", NULL};
	char path[] = "/tmp/tlogpipeXXXXXX", *text;
	struct mask *m = mask_new(secrets);
	struct logpipe *lp = malloc(sizeof(*lp));
	int p[2], fd = tmp_log(path);
	bool eof = false;
	size_t len;

	assert_int_equal(pipe(p), 0);
	logpipe_init(lp, fd, m, 0);
	assert_int_equal(write(p[1], "one pa55", 8), 8);
	assert_int_equal(logpipe_pump(lp, p[0], &eof, NULL), 0);
	assert_int_equal(write(p[1], "word two\n", 9), 9);
	assert_int_equal(logpipe_pump(lp, p[0], &eof, NULL), 0);
	assert_false(eof);
	close(p[1]);
	assert_int_equal(logpipe_pump(lp, p[0], &eof, NULL), 0);
	assert_true(eof);
	text = slurp(path, &len);
	assert_string_equal(text, "one *** two\n");
	free(text);
	close(p[0]);
	close(fd);
	unlink(path);
	mask_free(m);
	free(lp);
}

static void test_bounded_read(void **state)
{
	char path[] = "/tmp/tlogpipeXXXXXX", *text, *big;
	struct logpipe *lp = malloc(sizeof(*lp));
	int p[2], fd = tmp_log(path);
	size_t n = 3 * LOGPIPE_BUF / 2, len;
	bool eof = false;

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 1 << 20) >= (int)n);
	big = malloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	assert_int_equal(write(p[1], big, n), (ssize_t)n);
	logpipe_init(lp, fd, NULL, 0);
	assert_int_equal(logpipe_pump(lp, p[0], &eof, NULL), 0);
	assert_int_equal(lp->written, LOGPIPE_BUF); /* one buffer per pump */
	assert_int_equal(logpipe_pump(lp, p[0], &eof, NULL), 0);
	assert_int_equal(lp->written, (int64_t)n);
	text = slurp(path, &len);
	assert_int_equal(len, n);
	assert_memory_equal(text, big, n);
	free(text);
	free(big);
	close(p[0]);
	close(p[1]);
	close(fd);
	unlink(path);
	free(lp);
}

static void test_cap_marker(void **state)
{
	char path[] = "/tmp/tlogpipeXXXXXX", *text;
	struct logpipe *lp = malloc(sizeof(*lp));
	int fd = tmp_log(path);
	size_t len;

	logpipe_init(lp, fd, NULL, 10);
	assert_int_equal(logpipe_write(lp, "0123456", 7, NULL), 0);
	assert_int_equal(logpipe_write(lp, "789abcdef", 9, NULL), 0);
	assert_true(lp->truncated);
	assert_int_equal(logpipe_write(lp, "more", 4, NULL), 0);
	text = slurp(path, &len);
	assert_string_equal(text, "0123456789\n[tether] log truncated at 10 "
	                          "bytes (max_log_bytes)\n");
	free(text);
	close(fd);
	unlink(path);
	free(lp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pump_in_order_masked),
	    cmocka_unit_test(test_bounded_read),
	    cmocka_unit_test(test_cap_marker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
