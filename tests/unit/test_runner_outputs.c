/* Unit tests of runner/outputs.c: regular files listed with size and
 * sha256; symlinks (out or in), special files and unsafe names refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "runner/outputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *why(json_t *refused, const char *path)
{
	json_t *o;
	size_t i;

	json_array_foreach(refused, i, o)
	{
		if (strcmp(json_string_value(json_object_get(o, "path")),
		           path) == 0)
			return json_string_value(json_object_get(o, "why"));
	}
	return NULL;
}

static void test_walk(void **state)
{
	char dir[] = "/tmp/toutputsXXXXXX", p[512];
	json_t *files = NULL, *refused = NULL, *f0;
	struct err e = {0};

	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/a/b", dir);
	assert_int_equal(mkdir_p(p, 0755, &e), 0);
	put(dir, "a/b/model.txt", "abc");
	put(dir, "top.txt", "");
	snprintf(p, sizeof(p), "%s/passwd", dir);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof(p), "%s/a/up", dir);
	assert_int_equal(symlink("../../x", p), 0);
	snprintf(p, sizeof(p), "%s/a/in", dir);
	assert_int_equal(symlink("b/model.txt", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", dir);
	assert_int_equal(mkfifo(p, 0600), 0);

	assert_int_equal(outputs_list(dir, &files, &refused, &e), 0);
	assert_int_equal(json_array_size(files), 2);
	f0 = json_array_get(files, 0);
	assert_string_equal(json_string_value(json_object_get(f0, "path")),
	                    "a/b/model.txt");
	assert_int_equal(json_integer_value(json_object_get(f0, "size")), 3);
	assert_string_equal(
	    json_string_value(json_object_get(f0, "sha256")),
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_string_equal(json_string_value(json_object_get(
	                        json_array_get(files, 1), "path")),
	                    "top.txt");
	assert_string_equal(why(refused, "passwd"),
	                    "symlink points outside the outputs directory");
	assert_string_equal(why(refused, "a/up"),
	                    "symlink points outside the outputs directory");
	assert_string_equal(why(refused, "a/in"), "symlink (not followed)");
	assert_string_equal(why(refused, "fifo"), "not a regular file");
	assert_int_equal(json_array_size(refused), 4);
	json_decref(files);
	json_decref(refused);
	assert_int_equal(rm_rf(dir, &e), 0);
}

static void test_missing_dir(void **state)
{
	json_t *files = NULL, *refused = NULL;
	struct err e = {0};

	assert_int_equal(
	    outputs_list("/nonexistent/outputs", &files, &refused, &e), 0);
	assert_int_equal(json_array_size(files), 0);
	json_decref(files);
	json_decref(refused);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_walk),
	    cmocka_unit_test(test_missing_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
