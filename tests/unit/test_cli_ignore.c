/* Unit tests of the CLI's .gitignore / .tetherignore subset (ignore.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/fileio.h"
#include "common/util.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static struct ignore *load(char *dir, const char *gi, const char *ti)
{
	char *p;

	assert_non_null(mkdtemp(dir));
	p = xasprintf("%s/.gitignore", dir);
	assert_int_equal(file_write_atomic(p, gi, strlen(gi), 0644, NULL), 0);
	free(p);
	p = xasprintf("%s/.tetherignore", dir);
	assert_int_equal(file_write_atomic(p, ti, strlen(ti), 0644, NULL), 0);
	free(p);
	return ignore_load(dir);
}

static void test_rules(void **state)
{
	char dir[] = "/tmp/tcliignXXXXXX";
	struct ignore *ig = load(dir,
	                         "# comment\n\n*.pyc\n*.log\n!keep.log\n"
	                         "/build/\nlogs/\ndocs/*.tmp\n  \n",
	                         "data/\n**/cache/**\n");

	assert_true(ignore_match(ig, "a.pyc", false));
	assert_true(ignore_match(ig, "pkg/sub/a.pyc", false));
	assert_false(ignore_match(ig, "a.py", false));
	assert_true(ignore_match(ig, "x.log", false));
	assert_false(ignore_match(ig, "keep.log", false));
	assert_true(ignore_match(ig, "build", true));
	assert_false(ignore_match(ig, "build", false));    /* dir-only */
	assert_false(ignore_match(ig, "src/build", true)); /* anchored */
	assert_true(ignore_match(ig, "logs", true));
	assert_true(ignore_match(ig, "a/logs", true));
	assert_true(ignore_match(ig, "docs/x.tmp", false));
	assert_false(ignore_match(ig, "docs/sub/x.tmp", false));
	assert_true(ignore_match(ig, "data", true));
	assert_true(ignore_match(ig, "a/cache/b", false));
	assert_true(ignore_match(ig, ".git", true));
	assert_true(ignore_match(ig, "sub/.git", true));
	assert_false(ignore_match(ig, ".gitignore", false));
	ignore_free(ig);
	rm_rf(dir, NULL);
}

static void test_no_files(void **state)
{
	struct ignore *ig = ignore_load("/nonexistent-dir");

	assert_false(ignore_match(ig, "anything", false));
	assert_true(ignore_match(ig, ".git", true));
	ignore_free(ig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_no_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
