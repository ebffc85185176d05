/* Unit tests of runner/env/env-cache.c: completeness, locks, listing, LRU
 * eviction that never removes an environment in use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"
#include "runner/env/env.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

static char dir[] = "/tmp/tenvcacheXXXXXX";

static const char *key_n(int n)
{
	static char k[4][65];

	memset(k[n], 'a' + n, 64);
	k[n][64] = '\0';
	return k[n];
}

/* A complete environment of about `kb` KiB used `age` seconds ago. */
static void make_env(int n, int kb, int age)
{
	char *d = xasprintf("%s/%s", dir, key_n(n));
	char *f = xasprintf("%s/data", d), *meta;
	char *buf = xcalloc(1, (size_t)kb * 1024);
	struct err e = {0};
	char *text;

	assert_int_equal(mkdir_p(d, 0755, &e), 0);
	assert_int_equal(file_write_atomic(f, buf, (size_t)kb * 1024, 0644, &e),
	                 0);
	assert_int_equal(env_cache_touch(dir, key_n(n), "venv", true, &e), 0);
	/* backdate last_used */
	meta = xasprintf("%s/.meta/%s.json", dir, key_n(n));
	text = xasprintf("{\"key\": \"%s\", \"kind\": \"venv\", \"size_bytes\":"
	                 " %d, \"created\": 1, \"last_used\": %lld}",
	                 key_n(n), kb * 1024, (long long)time(NULL) - age);
	assert_int_equal(file_write_atomic(meta, text, strlen(text), 0644, &e),
	                 0);
	free(text);
	free(meta);
	free(buf);
	free(f);
	free(d);
}

static int64_t last_used_of(int n)
{
	struct env_entry *v = NULL;
	struct err e = {0};
	size_t cnt = 0;
	int64_t t = -1;

	assert_int_equal(env_cache_list(dir, &v, &cnt, &e), 0);
	for (size_t i = 0; i < cnt; i++)
		if (strcmp(v[i].key, key_n(n)) == 0)
			t = v[i].last_used;
	free(v);
	return t;
}

/* A cache hit rewrites the record only when it is a minute old or more
 * (runner/env/env-cache.c TOUCH_EVERY_S): a burst of jobs on one
 * environment does not replace its record for every job. */
static void test_touch_at_most_once_a_minute(void **state)
{
	int64_t now = (int64_t)time(NULL);

	(void)state;
	make_env(1, 4, 30);
	make_env(2, 4, 90);
	assert_int_equal(env_cache_touch(dir, key_n(1), "venv", false, NULL),
	                 0);
	assert_int_equal(env_cache_touch(dir, key_n(2), "venv", false, NULL),
	                 0);
	assert_true(last_used_of(1) <= now - 30); /* left as it was */
	assert_true(last_used_of(2) >= now);      /* moved to now */
	/* a record of another kind (the key reused) is rewritten */
	assert_int_equal(env_cache_touch(dir, key_n(1), "conda", false, NULL),
	                 0);
	assert_true(last_used_of(1) >= now);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rm_rf(dir, NULL);
}

static void test_complete_and_clean(void **state)
{
	char *d = xasprintf("%s/%s", dir, key_n(3));
	char *tmp = xasprintf("%s/%s.tmp.99999", dir, key_n(3));
	struct err e = {0};

	(void)state;
	assert_false(env_cache_complete(dir, key_n(3)));
	assert_int_equal(mkdir(d, 0755), 0); /* a crashed build */
	assert_int_equal(mkdir(tmp, 0755), 0);
	assert_false(env_cache_complete(dir, key_n(3)));
	env_cache_clean_key(dir, key_n(3));
	assert_int_equal(access(d, F_OK), -1);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(mkdir(d, 0755), 0);
	{ /* what the build writes into its tree makes nothing complete */
		char *planted = xasprintf("%s/.tether-env.json", d);
		assert_int_equal(mkfifo(planted, 0644), 0);
		assert_false(env_cache_complete(dir, key_n(3)));
		unlink(planted);
		free(planted);
	}
	assert_int_equal(env_cache_touch(dir, key_n(3), "conda", true, &e), 0);
	assert_true(env_cache_complete(dir, key_n(3)));
	env_cache_clean_key(dir, key_n(3)); /* keeps a complete one */
	assert_true(env_cache_complete(dir, key_n(3)));
	assert_int_equal(rm_rf(d, &e), 0);
	free(d);
	free(tmp);
}

static void test_lock_excludes(void **state)
{
	int a = -1, b = -1;
	struct err e = {0};

	(void)state;
	assert_int_equal(env_cache_lock(dir, key_n(0), false, &a, &e), 0);
	assert_int_equal(env_cache_lock(dir, key_n(0), false, &b, &e),
	                 TERR_BUSY);
	close(a);
	assert_int_equal(env_cache_lock(dir, key_n(0), false, &b, &e), 0);
	close(b);
}

static void test_list_and_prune(void **state)
{
	struct env_entry *v;
	size_t n, removed;
	int64_t freed;
	int use = -1;
	struct err e = {0};

	(void)state;
	make_env(0, 64, 300); /* oldest, but in use */
	make_env(1, 64, 200);
	make_env(2, 64, 100);
	assert_int_equal(env_cache_use(dir, key_n(0), &use, &e), 0);
	/* packed for Spark's executors (runner/spark/spark-archive.c) */
	for (int i = 0; i < 2; i++) {
		char *p = xasprintf("%s/.spark/%s", dir, key_n(i));
		assert_int_equal(mkdir_p(p, 0755, &e), 0);
		free(p);
	}
	assert_int_equal(env_cache_list(dir, &v, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].key, key_n(0)); /* least recently used first */
	assert_true(v[0].in_use);
	assert_false(v[1].in_use);
	assert_string_equal(v[2].key, key_n(2));
	assert_string_equal(v[2].kind, "venv");
	free(v);

	/* budget for one env: 0 is in use, so 1 goes (then 2 to fit) */
	assert_int_equal(env_cache_prune(dir, 100 * 1024, &freed, &removed, &e),
	                 0);
	assert_int_equal(removed, 2);
	assert_int_equal(freed, 128 * 1024);
	assert_true(env_cache_complete(dir, key_n(0)));
	assert_false(env_cache_complete(dir, key_n(1)));
	assert_false(env_cache_complete(dir, key_n(2)));
	{ /* an evicted environment's archive goes with it */
		char *p0 = xasprintf("%s/.spark/%s", dir, key_n(0));
		char *p1 = xasprintf("%s/.spark/%s", dir, key_n(1));
		assert_int_equal(access(p0, F_OK), 0);
		assert_int_equal(access(p1, F_OK), -1);
		free(p0);
		free(p1);
	}

	/* --all keeps what is in use, then removes it once released */
	assert_int_equal(env_cache_prune(dir, -1, &freed, &removed, &e), 0);
	assert_int_equal(removed, 0);
	env_cache_unuse(use);
	assert_int_equal(env_cache_prune(dir, -1, &freed, &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(env_cache_list(dir, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	free(v);
}

/* Which requirements name code in the job's tree (env.h): the key then
 * carries the source. */
static void test_local_requirements(void **state)
{
	static const char *const local[] = {"./pkg",
	                                    ".",
	                                    "/abs/dir",
	                                    "wheels/x-1.0-py3-none-any.whl",
	                                    "x-1.0.tar.gz",
	                                    "-e .",
	                                    "--editable=./pkg",
	                                    "-r more.txt",
	                                    "-c c.txt",
	                                    "--find-links ./wheels",
	                                    "-f=wheels",
	                                    "pkg @ file:///tmp/x",
	                                    "pkg @ ./dir",
	                                    "  ./indented",
	                                    NULL};
	static const char *const remote[] = {"numpy",
	                                     "torch>=2.0",
	                                     "numpy>=1.0; python_version<'3.8'",
	                                     "pkg @ https://host/pkg.whl",
	                                     "git+https://h/r.git@v1#egg=r",
	                                     "--index-url https://i/simple",
	                                     "--pre",
	                                     "-e git+https://h/r.git",
	                                     "--find-links https://h/wheels/",
	                                     "# ./comment",
	                                     "",
	                                     NULL};
	const char *opts[] = {"--no-index", "--find-links", "wheels", NULL};
	const char *ropts[] = {"--no-index", "--find-links",
	                       "https://h/wheels/", NULL};
	const char *yml = "name: x\ndependencies:\n  - python=3.11\n"
	                  "  - pip:\n    - ./pkg\n";
	const char *yml_ok = "name: x\nprefix: /opt/x\ndependencies:\n"
	                     "  - numpy\n  - pip:\n    - torch\n";

	(void)state;
	for (size_t i = 0; local[i]; i++)
		if (!env_req_local(local[i], NULL))
			fail_msg("not seen as local: '%s'", local[i]);
	for (size_t i = 0; remote[i]; i++)
		if (env_req_local(remote[i], NULL))
			fail_msg("seen as local: '%s'", remote[i]);
	assert_true(env_spec_local(NULL, opts));
	assert_false(env_spec_local(NULL, ropts));
	assert_true(env_req_local("-r", NULL)); /* no value: the worst */
	assert_true(env_text_local(yml, strlen(yml), true));
	assert_false(env_text_local(yml_ok, strlen(yml_ok), true));
	assert_true(env_text_local("numpy\n-e .\n", 11, false));
	assert_false(env_text_local("numpy\ntorch==2\n", 15, false));
}

static void test_prune_within_budget_keeps_all(void **state)
{
	size_t removed = 9;
	struct err e = {0};

	(void)state;
	make_env(1, 16, 10);
	make_env(2, 16, 5);
	assert_int_equal(env_cache_prune(dir, 1 << 20, NULL, &removed, &e), 0);
	assert_int_equal(removed, 0);
	assert_true(env_cache_complete(dir, key_n(1)));
	assert_int_equal(env_cache_prune(dir, -1, NULL, &removed, &e), 0);
	assert_int_equal(removed, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_complete_and_clean),
	    cmocka_unit_test(test_touch_at_most_once_a_minute),
	    cmocka_unit_test(test_lock_excludes),
	    cmocka_unit_test(test_list_and_prune),
	    cmocka_unit_test(test_prune_within_budget_keeps_all),
	    cmocka_unit_test(test_local_requirements),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
