/* Unit tests of runner/jobfile.c: files of a job's source read by the root
 * runner: beneath the work directory only (symlinks out, "..", absolute
 * paths refused; symlinks inside followed), regular files only (a FIFO
 * refused without blocking), capped; the same without openat2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "runner/jobfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
	char path[128];
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/tjobfileXXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/sub", dir);
	if (mkdir(path, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/sub/req.txt", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs("tinypkg==1.0\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/in", dir);
	if (symlink("sub/req.txt", path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/d", dir);
	if (symlink("/dev", path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/up", dir);
	if (symlink("../../etc/passwd", path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/fifo", dir);
	return mkfifo(path, 0644);
}

static int teardown(void **state)
{
	struct err e = {0};

	(void)state;
	jobfile_without_openat2(false);
	return rm_rf(dir, &e);
}

static void check_all(void)
{
	struct err e = {0};
	char *text = NULL, hex[65];
	size_t len;

	assert_int_equal(
	    jobfile_read(NULL, dir, "sub/req.txt", 1024, &text, &len, &e), 0);
	assert_string_equal(text, "tinypkg==1.0\n");
	free(text);
	assert_int_equal(
	    jobfile_sha256(NULL, dir, "sub/req.txt", 1024, hex, &e), 0);
	/* over the cap */
	assert_int_equal(
	    jobfile_read(NULL, dir, "sub/req.txt", 4, &text, &len, &e),
	    TERR_TOOBIG);
	/* out of the source: refused at once, saying why */
	assert_int_equal(jobfile_sha256(NULL, dir, "d/zero", 1 << 20, hex, &e),
	                 TERR_PERM);
	assert_non_null(strstr(e.msg, "'d/zero' in the source: it leads out"));
	assert_int_equal(jobfile_read(NULL, dir, "up", 1024, &text, &len, &e),
	                 TERR_PERM);
	assert_int_equal(jobfile_read(NULL, dir, "sub/../../etc/passwd", 1024,
	                              &text, &len, &e),
	                 TERR_PERM);
	assert_int_equal(
	    jobfile_read(NULL, dir, "/etc/passwd", 1024, &text, &len, &e),
	    TERR_INVAL);
	/* not regular files; a FIFO does not block */
	assert_int_equal(jobfile_read(NULL, dir, "fifo", 1024, &text, &len, &e),
	                 TERR_PERM);
	assert_non_null(strstr(e.msg, "not a regular file"));
	assert_int_equal(jobfile_read(NULL, dir, "sub", 1024, &text, &len, &e),
	                 TERR_PERM);
	assert_int_equal(jobfile_read(NULL, dir, "nope", 1024, &text, &len, &e),
	                 TERR_NOTFOUND);
}

static void test_openat2(void **state)
{
	struct err e = {0};
	char *text = NULL;
	size_t len;

	(void)state;
	{
		/* valgrind (and old kernels) answer openat2 with ENOSYS: the
		 * runner then reads by hand, which test_by_hand covers */
		struct open_how how = {.flags = O_RDONLY | O_CLOEXEC};
		long fd =
		    syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
		if (fd < 0 && errno == ENOSYS)
			skip();
		if (fd >= 0)
			close((int)fd);
	}
	jobfile_without_openat2(false);
	check_all();
	/* a symlink that stays inside is followed */
	assert_int_equal(jobfile_read(NULL, dir, "in", 1024, &text, &len, &e),
	                 0);
	free(text);
}

static void test_by_hand(void **state)
{
	struct err e = {0};
	char *text = NULL;
	size_t len;

	(void)state;
	jobfile_without_openat2(true);
	check_all();
	/* by hand every symlink is refused, even one inside */
	assert_int_equal(jobfile_read(NULL, dir, "in", 1024, &text, &len, &e),
	                 TERR_PERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_openat2),
	    cmocka_unit_test(test_by_hand),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
