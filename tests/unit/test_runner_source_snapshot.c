/* Unit tests of runner/source/snapshot.c on archives made with GNU tar: a round
 * trip, and refusals (.., absolute path, symlink out, device, limits) that
 * leave the target empty and write nothing outside it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"
#include "runner/source/source.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[] = "/tmp/tsnapXXXXXX";
static const struct snapshot_limits lim = {1000, 1 << 20};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a shell command (test setup only) and require success. */
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

static int count_entries(const char *d)
{
	DIR *dd = opendir(d);
	struct dirent *de;
	int n = 0;

	assert_non_null(dd);
	while ((de = readdir(dd)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(dd);
	return n;
}

/* Extract top/name into a fresh top/out; returns the result code. */
static int extract(const char *name, const struct snapshot_limits *l,
                   struct err *e)
{
	char *arc = xasprintf("%s/%s", top, name);
	char *out = xasprintf("%s/out", top);
	int rc;

	rm_rf(out, NULL);
	assert_int_equal(mkdir(out, 0755), 0);
	rc = snapshot_extract(arc, out, l, e);
	if (rc < 0)
		assert_int_equal(count_entries(out), 0);
	free(arc);
	free(out);
	return rc;
}

static void test_round_trip(void **state)
{
	struct err e = {0};

	(void)state;
	sh("cd %s && mkdir -p src/a/b/c src/empty && head -c 100000 "
	   "/dev/urandom > src/a/b/c/blob && echo hi > src/top.txt && "
	   "chmod 755 src/top.txt && ln -s ../top.txt src/a/link && "
	   "tar czf good.tgz -C src .",
	   top);
	assert_int_equal(extract("good.tgz", &lim, &e), 0);
	sh("cd %s && diff -r --no-dereference src out", top);
	assert_int_equal(access("/tmp", F_OK), 0);
}

static void test_refusals(void **state)
{
	struct err e = {0};
	char *outside = xasprintf("%s/outside", top);

	(void)state;
	sh("cd %s && echo x > f && tar czPf dotdot.tgz --transform='s,^,../,' "
	   "f",
	   top);
	assert_int_equal(extract("dotdot.tgz", &lim, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "'..' leads outside"));
	assert_int_equal(access(outside, F_OK), -1);

	sh("cd %s && tar czPf abs.tgz %s/f", top, top);
	assert_int_equal(extract("abs.tgz", &lim, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "absolute path"));

	sh("cd %s && mkdir -p s1 && ln -sfn /etc s1/etc && tar czf sym.tgz "
	   "-C s1 .",
	   top);
	assert_int_equal(extract("sym.tgz", &lim, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "symlink to '/etc'"));

	sh("cd %s && mkdir -p s2/d && ln -sfn ../../x s2/d/up && tar czf "
	   "up.tgz -C s2 .",
	   top);
	assert_int_equal(extract("up.tgz", &lim, &e), TERR_INVAL);

	sh("cd %s && mkdir -p s3 && rm -f s3/null && mknod s3/null c 1 3 && "
	   "tar czf dev.tgz -C s3 .",
	   top);
	assert_int_equal(extract("dev.tgz", &lim, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "device node"));
	free(outside);
}

static void test_limits(void **state)
{
	struct snapshot_limits small = {5, 1000};
	struct err e = {0};

	(void)state;
	sh("cd %s && mkdir -p many && for i in 1 2 3 4 5 6; do : > many/$i; "
	   "done && tar czf many.tgz -C many . && mkdir -p big && head -c 5000 "
	   "/dev/zero > big/z && tar czf big.tgz -C big .",
	   top);
	assert_int_equal(extract("many.tgz", &small, &e), TERR_TOOBIG);
	assert_non_null(strstr(e.msg, "more than 5 entries"));
	assert_int_equal(extract("big.tgz", &small, &e), TERR_TOOBIG);
	assert_non_null(strstr(e.msg, "snapshot_max_bytes"));
	sh("cd %s && head -c 300 /dev/urandom > junk.tgz", top);
	assert_int_equal(extract("junk.tgz", &small, &e), TERR_INVAL);
}

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	return mkdtemp(top) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rm_rf(top, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_limits),
	};
	if (geteuid() != 0) {
		printf("skipped: needs root (mknod for the device test)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
