/* Unit tests of the runner's lifecycle pieces: TETHER_PROGRESS lines
 * (progress.c) and pack-checkpoint (supervisor-pack.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/supervisor/supervisor.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool feed(struct progress *p, struct runner *r, const char *s)
{
	return progress_feed(p, r, s, strlen(s));
}

/* Values are read only from whole lines that start with the prefix; a
 * line split across reads counts once; a repeated value is no progress. */
static void test_progress_lines(void **state)
{
	struct progress p = {0};
	struct runner r = {0};

	(void)state;
	assert_false(feed(&p, &r, "epoch 1 TETHER_PROGRESS step=9\n"));
	assert_false(r.has_progress);
	assert_false(feed(&p, &r, "TETHER_PROG"));
	assert_true(feed(&p, &r, "RESS step=12\nmore output\n"));
	assert_true(r.has_progress);
	assert_true(r.progress == 12);
	assert_true(p.pending);
	assert_false(feed(&p, &r, "TETHER_PROGRESS step=12\n"));
	assert_false(feed(&p, &r, "TETHER_PROGRESS step=abc\n"));
	assert_false(feed(&p, &r, "TETHER_PROGRESS step=13 tail\n"));
	assert_true(feed(&p, &r, "TETHER_PROGRESS step=0.5\r\n"));
	assert_true(r.progress == 0.5);
}

/* A line longer than the scanner's buffer is skipped whole, even when
 * its tail looks like a progress line. */
static void test_progress_long_line(void **state)
{
	struct progress p = {0};
	struct runner r = {0};
	char big[400];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_false(progress_feed(&p, &r, big, sizeof(big)));
	assert_false(feed(&p, &r, "TETHER_PROGRESS step=5\n"));
	assert_false(r.has_progress);
	assert_true(feed(&p, &r, "TETHER_PROGRESS step=6\n"));
}

static json_t *load_json(const char *path)
{
	json_t *j = json_load_file(path, 0, NULL);

	assert_non_null(j);
	return j;
}

/* pack-checkpoint: a content-named archive whose sha256 the json gives;
 * an empty directory packs nothing. */
static void test_pack(void **state)
{
	char dir[] = "/tmp/tether-pack-XXXXXX", *ck, *path, sha[65];
	json_t *j;
	struct err e = {0};
	const char *want;

	(void)state;
	assert_non_null(mkdtemp(dir));
	ck = xasprintf("%s/checkpoints", dir);
	assert_int_equal(mkdir(ck, 0700), 0);
	assert_int_equal(supervisor_pack(dir, &e), 0);
	path = xasprintf("%s/checkpoint-out.json", dir);
	j = load_json(path);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	                    "empty");
	json_decref(j);
	unlink(path);
	free(path);

	path = xasprintf("%s/epoch-1.pt", ck);
	assert_int_equal(file_write_atomic(path, "weights", 7, 0600, NULL), 0);
	free(path);
	path = xasprintf("%s/link", ck);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	free(path);
	assert_int_equal(supervisor_pack(dir, &e), 0);
	path = xasprintf("%s/checkpoint-out.json", dir);
	j = load_json(path);
	free(path);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	                    "built");
	assert_int_equal(json_integer_value(json_object_get(j, "files")), 1);
	want = json_string_value(json_object_get(j, "sha256"));
	path = xasprintf("%s/checkpoint-out.%s.tar.gz", dir, want);
	assert_int_equal(sha256_file(path, sha, NULL, NULL), 0);
	assert_string_equal(sha, want);
	free(path);
	json_decref(j);
	free(ck);
	rm_rf(dir, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_progress_lines),
	    cmocka_unit_test(test_progress_long_line),
	    cmocka_unit_test(test_pack),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
