/* Unit tests of runner/slurm/slurm-script.c: quoting, the batch wrapper (run
 * for real with /bin/sh, no Slurm needed), the env file and the sbatch argv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/runner.h"
#include "runner/slurm/slurm.h"
#include "common/buf.h"
#include "common/cmdrun.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_quote(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(slurm_quote(&b, "plain", NULL), 0);
	assert_int_equal(slurm_quote(&b, "it's", NULL), 0);
	assert_int_equal(slurm_quote(&b, "", NULL), 0);
	assert_string_equal(b.data, "'plain''it'\\''s'''");
	buf_free(&b);
}

/* Write text to dir/name; returns the heap path. */
static char *put(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);

	assert_int_equal(file_write_atomic(p, text, strlen(text), 0700, NULL),
	                 0);
	return p;
}

/* Hostile arguments and environment reach the job exactly, never as shell
 * code; the exit code lands in the exit file. */
static void test_batch_wrapper_runs_argv_exactly(void **state)
{
	char dir[] = "/tmp/tslurmXXXXXX";
	char *evil[] = {"/bin/sh",
	                "-c",
	                "for a; do printf '[%s]' \"$a\"; done; "
	                "printf '{%s}{%s}' \"$FOO\" \"$TETHER_WORK\"; exit 3",
	                "x",
	                "it's",
	                "$(touch pwned)",
	                "`id`; rm -rf /",
	                "two\nlines",
	                "",
	                NULL};
	char *envp[] = {"FOO=a'b $(x)", "TETHER_WORK=/tether/work",
	                "BAD-NAME=skipped", "=x", NULL};
	struct slurm_paths p;
	struct buf env, script, out;
	char *work, *envf, *exitf, *scriptf, *text = NULL;
	int st = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	work = xasprintf("%s/work", dir);
	envf = xasprintf("%s/%s", dir, SLURM_ENV);
	exitf = xasprintf("%s/%s", dir, SLURM_EXIT);
	assert_int_equal(mkdir_p(work, 0700, NULL), 0);
	p = (struct slurm_paths){dir, work, "/o", "/c", envf, exitf};
	buf_init(&env, 1 << 20);
	buf_init(&script, 1 << 20);
	buf_init(&out, 1 << 20);
	assert_int_equal(slurm_script_env(&p, envp, &env, NULL), 0);
	assert_null(strstr(env.data, "BAD-NAME"));
	assert_int_equal(slurm_script_batch(&p, evil, NULL, &script, NULL), 0);
	free(put(dir, SLURM_ENV, env.data));
	scriptf = put(dir, SLURM_SCRIPT, script.data);
	const char *argv[] = {"/bin/sh", scriptf, NULL};
	assert_int_equal(cmd_capture(argv, &out, NULL, 10000, &st, NULL), 0);
	assert_int_equal(st, 3);
	char *want = xasprintf("[it's][$(touch pwned)][`id`; rm -rf /]"
	                       "[two\nlines][]{a'b $(x)}{%s}",
	                       work);
	assert_string_equal(out.data, want);
	char *pwned = xasprintf("%s/pwned", work);
	assert_int_equal(access(pwned, F_OK), -1);
	free(pwned);
	assert_int_equal(file_read_all(exitf, 64, &text, NULL, NULL), 0);
	assert_string_equal(text, "3\n");
	free(text);
	free(want);
	free(scriptf);
	buf_free(&env);
	buf_free(&script);
	buf_free(&out);
	rm_rf(dir, NULL);
	free(work);
	free(envf);
	free(exitf);
}

static void test_batch_needs_command(void **state)
{
	struct slurm_paths p = {"/d", "/w", "/o", "/c", "/d/e", "/d/x"};
	char *none[] = {NULL};
	struct buf b;
	struct err e = {0};

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(slurm_script_batch(&p, none, NULL, &b, &e),
	                 TERR_INVAL);
	buf_free(&b);
}

static void test_sbatch_argv(void **state)
{
	struct slurm_submit s = {.job_name = "tether-42-1",
	                         .script = "/a/slurm-batch.sh",
	                         .output = "/a/slurm.out",
	                         .chdir = "/a/work",
	                         .partition = "gpu",
	                         .account = NULL,
	                         .qos = "high",
	                         .cpus = 4,
	                         .mem_mb = 2048,
	                         .gpus = 2,
	                         .time_min = 3,
	                         .nodes = 0,
	                         .ntasks = 8};
	const char *want[] = {"sbatch",
	                      "--parsable",
	                      "--export=NONE",
	                      "--no-requeue",
	                      "--open-mode=append",
	                      "--job-name=tether-42-1",
	                      "--output=/a/slurm.out",
	                      "--chdir=/a/work",
	                      "--partition=gpu",
	                      "--qos=high",
	                      "--ntasks=8",
	                      "--cpus-per-task=4",
	                      "--mem=2048M",
	                      "--gres=gpu:2",
	                      "--time=3",
	                      "/a/slurm-batch.sh",
	                      NULL};
	char **argv = slurm_sbatch_argv(&s);
	size_t i;

	(void)state;
	for (i = 0; want[i] != NULL; i++) {
		assert_non_null(argv[i]);
		assert_string_equal(argv[i], want[i]);
	}
	assert_null(argv[i]);
	runner_strv_free(argv);

	/* Root submitting for the job user. */
	s.uid = 999;
	s.gid = 995;
	argv = slurm_sbatch_argv(&s);
	for (i = 0; argv[i + 1] != NULL; i++)
		;
	assert_string_equal(argv[i], "/a/slurm-batch.sh");
	assert_string_equal(argv[i - 2], "--uid=999");
	assert_string_equal(argv[i - 1], "--gid=995");
	runner_strv_free(argv);
}

static void test_time_and_jobid(void **state)
{
	char id[64];
	struct err e = {0};

	(void)state;
	assert_int_equal(slurm_time_minutes(0), 0);
	assert_int_equal(slurm_time_minutes(1), 1);
	assert_int_equal(slurm_time_minutes(60000), 1);
	assert_int_equal(slurm_time_minutes(60001), 2);
	assert_int_equal(slurm_time_minutes(2 * 3600 * 1000), 120);
	assert_int_equal(slurm_parse_jobid("123\n", id, &e), 0);
	assert_string_equal(id, "123");
	assert_int_equal(slurm_parse_jobid("77;cluster\n", id, &e), 0);
	assert_string_equal(id, "77");
	assert_int_equal(slurm_parse_jobid("", id, &e), TERR_PROTO);
	assert_int_equal(slurm_parse_jobid("sbatch: error", id, &e),
	                 TERR_PROTO);
	assert_int_equal(slurm_parse_jobid("12x", id, &e), TERR_PROTO);
}

/* squeue shows which job it is (issue 28). */
static void test_job_name(void **state)
{
	char *n;

	(void)state;
	n = slurm_job_name("42", "digits");
	assert_string_equal(n, "tether-42-digits");
	free(n);
	n = slurm_job_name("7", "a b/c;$(x)\xc3\xa9");
	assert_string_equal(n, "tether-7-a_b_c___x___");
	free(n);
	n = slurm_job_name("123", "a-very-long-name-that-goes-on-and-on-and-on-"
	                          "for-more-than-sixty-four-bytes");
	assert_int_equal(strlen(n), SLURM_NAME_MAX);
	assert_memory_equal(n, "tether-123-a-very-long", 22);
	free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_job_name),
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_batch_wrapper_runs_argv_exactly),
	    cmocka_unit_test(test_batch_needs_command),
	    cmocka_unit_test(test_sbatch_argv),
	    cmocka_unit_test(test_time_and_jobid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
