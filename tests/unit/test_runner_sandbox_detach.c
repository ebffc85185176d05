/* Unit tests of runner/sandbox/sandbox-detach.c: where a runner that
 * adopts a detached sandbox resumes its output (sandbox.out) so that the
 * log gets no byte twice and none lost: through the secret masking, with
 * the runners' own lines between (and inside) the job's lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/runner.h"
#include "runner/sandbox/sandbox.h"
#include "common/attempt.h"
#include "common/fileio.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The offset for a log of prefix + logged and a sandbox.out of out. */
static int64_t resume_at(const char *prefix, const char *logged,
                         const char *out, struct jobspec *spec)
{
	char dir[] = "/tmp/tdetachXXXXXX";
	struct runner r = {0};
	char *log_text, *log_path, *out_path;
	int64_t off;

	assert_non_null(mkdtemp(dir));
	r.dir = dir;
	r.spec = spec;
	log_text = xasprintf("%s%s", prefix, logged);
	log_path = attempt_path(dir, ATTEMPT_LOG);
	out_path = attempt_path(dir, SANDBOX_OUT);
	assert_int_equal(
	    file_write_atomic(log_path, log_text, strlen(log_text), 0600, NULL),
	    0);
	assert_int_equal(
	    file_write_atomic(out_path, out, strlen(out), 0600, NULL), 0);
	off = sandbox_resume_offset(&r, (int64_t)strlen(prefix));
	free(log_path);
	free(out_path);
	free(log_text);
	rm_rf(dir, NULL);
	return off;
}

static void test_resume_offset(void **state)
{
	const char *pre = "[source] snapshot\n[env] ready\n";
	const char *out = "line 1\nline 2\nline 3 partial and more\nline 4\n";
	struct jobspec_kv secret = {"TOKEN", "hunter2"};
	struct jobspec spec = {0};

	(void)state;
	/* nothing, whole lines, a partial line, everything */
	assert_int_equal(resume_at(pre, "", out, NULL), 0);
	assert_int_equal(resume_at(pre, "line 1\nline 2\n", out, NULL), 14);
	assert_int_equal(
	    resume_at(pre, "line 1\nline 2\nline 3 par", out, NULL), 24);
	assert_int_equal(resume_at(pre, out, out, NULL), (int64_t)strlen(out));
	/* runner lines between the job's lines and inside one */
	assert_int_equal(
	    resume_at(pre,
	              "[spark] spark-submit --master local[1] (client mode)\n"
	              "line 1\nline 2\nline 3 par[spark] application "
	              "local-1 on local[1]\ntial and more\n",
	              out, NULL),
	    38);
	/* the job printing a runner-like line itself is the job's */
	assert_int_equal(
	    resume_at(pre, "[spark] fake\nx", "[spark] fake\nxy\n", NULL), 14);
	/* a differing byte stops the match */
	assert_int_equal(resume_at(pre, "line 1\nlinE", out, NULL), 10);
	/* masked secrets in the log match the raw output; a line with a
	 * secret is resumed whole or not at all */
	spec.secrets = &secret;
	spec.nsecrets = 1;
	assert_int_equal(resume_at(pre, "key=***\nnext\n",
	                           "key=hunter2\nnext\nmore\n", &spec),
	                 (int64_t)strlen("key=hunter2\nnext\n"));
	assert_int_equal(
	    resume_at(pre, "a\nkey=**", "a\nkey=hunter2\nnext\n", &spec), 2);
	/* no sandbox.out yet, or a log_start past the log */
	assert_int_equal(resume_at(pre, "", "", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resume_offset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
