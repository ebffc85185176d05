/* Unit tests of runner/mask.c: secrets become *** in a byte stream, also
 * when split across feeds at any position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "runner/mask.h"

#include <stdlib.h>
#include <string.h>

static int sink(void *arg, const char *data, size_t len, struct err *e)
{
	return buf_append(arg, data, len, e);
}

/* Feed text in pieces of `step` bytes (0: one piece) and finish. */
static char *mask_text(const char *const *secrets, const char *text,
                       size_t step)
{
	struct mask *m = mask_new(secrets);
	struct buf b;
	size_t len = strlen(text), off = 0;

	buf_init(&b, 1 << 20);
	if (step == 0)
		step = len ? len : 1;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		assert_int_equal(mask_feed(m, text + off, n, sink, &b, NULL),
		                 0);
		off += n;
	}
	assert_int_equal(mask_finish(m, sink, &b, NULL), 0);
	mask_free(m);
	buf_append(&b, "", 0, NULL);
	return buf_steal(&b);
}

static void test_raw(void **state)
{
	const char *secrets[] = {"hunter2", NULL};
	char *out = mask_text(secrets, "pw=hunter2 and hunter2\n", 0);

	assert_string_equal(out, "pw=*** and ***\n");
	free(out);
}

static void test_split_everywhere(void **state)
{
	const char *secrets[] = {"s3cr3t-value", "tok", NULL};
	const char *text = "a s3cr3t-value b tok c s3cr3t-valu d to";

	for (size_t step = 1; step <= strlen(text); step++) {
		char *out = mask_text(secrets, text, step);
		assert_string_equal(out, "a *** b *** c s3cr3t-valu d to");
		free(out);
	}
}

static void test_no_secrets_passthrough(void **state)
{
	const char *none[] = {NULL};
	const char *empty[] = {"", NULL};
	char *out = mask_text(none, "plain text", 3);

	assert_string_equal(out, "plain text");
	free(out);
	out = mask_text(empty, "plain text", 0);
	assert_string_equal(out, "plain text");
	free(out);
}

static void test_longest_and_adjacent(void **state)
{
	const char *secrets[] = {"abc", "abcdef", NULL};
	char *out;

	out = mask_text(secrets, "xabcdefabcabcdx", 1);
	assert_string_equal(out, "x*********dx");
	free(out);
	out = mask_text(secrets, "aabcab", 2);
	assert_string_equal(out, "a***ab");
	free(out);
}

static void test_large_stream(void **state)
{
	const char *secrets[] = {"0123456789", NULL};
	size_t len = 300000;
	char *text = malloc(len + 1), *out;

	for (size_t i = 0; i < len; i++)
		text[i] = (char)('0' + (i % 10));
	text[len] = '\0';
	out = mask_text(secrets, text, 4093);
	for (size_t i = 0; i < len / 10; i++)
		assert_memory_equal(out + 3 * i, "***", 3);
	assert_int_equal(strlen(out), 3 * (len / 10));
	free(out);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raw),
	    cmocka_unit_test(test_split_everywhere),
	    cmocka_unit_test(test_no_secrets_passthrough),
	    cmocka_unit_test(test_longest_and_adjacent),
	    cmocka_unit_test(test_large_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
