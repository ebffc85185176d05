/* Unit tests of runner/slurm/slurm-state.c and slurm-resume.c: scontrol
 * records, the Slurm -> Tether state mapping, the exit file, and where a
 * restarted runner resumes reading the job's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/runner.h"
#include "runner/slurm/slurm.h"
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const RECORD =
    "JobId=501 JobName=tether-42-1 UserId=root(0) GroupId=root(0) "
    "Priority=1 Nice=0 Account=(null) QOS=(null) JobState=FAILED "
    "Reason=NonZeroExitCode Dependency=(null) Requeue=0 Restarts=0 "
    "BatchFlag=1 Reboot=0 ExitCode=42:0 RunTime=00:00:01 "
    "TimeLimit=00:01:00 NodeList=vm BatchHost=vm NumNodes=1 "
    "StdOut=/a/slurm.out\n";

static void test_parse_record(void **state)
{
	struct slurm_info info;
	struct err e = {0};

	(void)state;
	assert_int_equal(slurm_info_parse(RECORD, &info, &e), 0);
	assert_true(info.known);
	assert_string_equal(info.state, "FAILED");
	assert_string_equal(info.reason, "NonZeroExitCode");
	assert_string_equal(info.node, "vm");
	assert_int_equal(info.exit_code, 42);
	assert_int_equal(info.exit_signal, 0);

	assert_int_equal(slurm_info_parse("JobId=7 JobState=CANCELLED+ "
	                                  "Reason=None ExitCode=0:9",
	                                  &info, &e),
	                 0);
	assert_string_equal(info.state, "CANCELLED");
	assert_int_equal(info.exit_signal, 9);
	/* "SubJobState=" must not be taken for JobState. */
	assert_int_equal(slurm_info_parse("XJobState=RUNNING", &info, &e),
	                 TERR_PROTO);
}

static void test_phase_mapping(void **state)
{
	static const struct {
		const char *state;
		enum slurm_phase phase;
		const char *reason;
	} cases[] = {
	    {"PENDING", SLURM_QUEUED, NULL},
	    {"CONFIGURING", SLURM_QUEUED, NULL},
	    {"REQUEUED", SLURM_QUEUED, NULL},
	    {"RUNNING", SLURM_RUNNING, NULL},
	    {"COMPLETING", SLURM_RUNNING, NULL},
	    {"SUSPENDED", SLURM_RUNNING, NULL},
	    {"COMPLETED", SLURM_ENDED, NULL},
	    {"FAILED", SLURM_ENDED, NULL},
	    {"CANCELLED", SLURM_ENDED, "cancelled"},
	    {"TIMEOUT", SLURM_ENDED, "timed_out"},
	    {"DEADLINE", SLURM_ENDED, "timed_out"},
	    {"OUT_OF_MEMORY", SLURM_ENDED, "oom"},
	    {"NODE_FAIL", SLURM_ENDED, "lost"},
	    {"BOOT_FAIL", SLURM_ENDED, "lost"},
	    {"PREEMPTED", SLURM_ENDED, "preempted"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = slurm_state_reason(cases[i].state, false);
		assert_int_equal(slurm_state_phase(cases[i].state),
		                 cases[i].phase);
		if (cases[i].reason == NULL)
			assert_null(got);
		else
			assert_string_equal(got, cases[i].reason);
	}
	/* A cancel the runner itself sent keeps the runner's own reason. */
	assert_null(slurm_state_reason("CANCELLED", true));
	assert_string_equal(slurm_state_reason("TIMEOUT", true), "timed_out");
}

/* Reasons that waiting does not clear end the attempt (issue 28). */
static void test_hopeless_reasons(void **state)
{
	(void)state;
	assert_true(slurm_reason_hopeless("PartitionConfig"));
	assert_true(slurm_reason_hopeless("ReqNodeNotAvail"));
	assert_true(
	    slurm_reason_hopeless("ReqNodeNotAvail, UnavailableNodes:n1"));
	assert_true(slurm_reason_hopeless("BadConstraints"));
	assert_true(slurm_reason_hopeless("PartitionNodeLimit"));
	assert_false(slurm_reason_hopeless("Resources"));
	assert_false(slurm_reason_hopeless("Priority"));
	assert_false(slurm_reason_hopeless("None"));
	assert_false(slurm_reason_hopeless(""));
	assert_false(slurm_reason_hopeless("PartitionConfigX"));
}

static void test_exit_file(void **state)
{
	char dir[] = "/tmp/tslurmXXXXXX";
	char *p;
	int code = -1;
	struct err e = {0};

	(void)state;
	assert_non_null(mkdtemp(dir));
	p = xasprintf("%s/%s", dir, SLURM_EXIT);
	assert_int_equal(slurm_exit_read(p, &code, &e), TERR_NOTFOUND);
	assert_int_equal(file_write_atomic(p, "137\n", 4, 0600, &e), 0);
	assert_int_equal(slurm_exit_read(p, &code, &e), 0);
	assert_int_equal(code, 137);
	assert_int_equal(file_write_atomic(p, "x\n", 2, 0600, &e), 0);
	assert_int_equal(slurm_exit_read(p, &code, &e), TERR_INVAL);
	free(p);
	rm_rf(dir, NULL);
}

/* A runner with an attempt dir whose log holds prefix + what of out was
 * delivered (+ tail), and slurm.out holding all of out. */
static int64_t resume_at(const char *prefix, const char *delivered,
                         const char *tail, const char *out,
                         struct jobspec *spec)
{
	char dir[] = "/tmp/tslurmXXXXXX";
	struct runner r = {0};
	struct slurm_job j = {0};
	char *log_text;
	int64_t off;

	assert_non_null(mkdtemp(dir));
	r.dir = dir;
	r.spec = spec;
	j.out_file = xasprintf("%s/%s", dir, SLURM_OUT);
	j.log_start = (int64_t)strlen(prefix);
	log_text = xasprintf("%s%s%s", prefix, delivered, tail);
	char *log_path = attempt_path(dir, ATTEMPT_LOG);
	assert_int_equal(
	    file_write_atomic(log_path, log_text, strlen(log_text), 0600, NULL),
	    0);
	assert_int_equal(
	    file_write_atomic(j.out_file, out, strlen(out), 0600, NULL), 0);
	assert_int_equal(slurm_follow_resume_offset(&j, &r, NULL), 0);
	off = j.out_offset;
	free(log_path);
	free(log_text);
	free(j.out_file);
	rm_rf(dir, NULL);
	return off;
}

static void test_resume_offset(void **state)
{
	const char *pre = "[slurm] submitted batch job 5\n";
	const char *out = "line 1\nline 2\nline 3 partial and more\nline 4\n";
	struct jobspec_kv secret = {"TOKEN", "hunter2"};
	struct jobspec spec = {0};

	(void)state;
	/* Whole lines, a partial line, nothing, everything. */
	assert_int_equal(resume_at(pre, "line 1\nline 2\n", "", out, NULL), 14);
	assert_int_equal(
	    resume_at(pre, "line 1\nline 2\nline 3 par", "", out, NULL), 24);
	assert_int_equal(resume_at(pre, "", "", out, NULL), 0);
	assert_int_equal(resume_at(pre, out, "", out, NULL),
	                 (int64_t)strlen(out));
	/* The new runner's own line after the old output stops the match. */
	assert_int_equal(
	    resume_at(pre, "line 1\n", "[tether] restarted\n", out, NULL), 7);
	/* Masked secrets in the log still match the raw output. */
	spec.secrets = &secret;
	spec.nsecrets = 1;
	assert_int_equal(resume_at(pre, "key=***\nnext\n", "",
	                           "key=hunter2\nnext\nmore\n", &spec),
	                 strlen("key=hunter2\nnext\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_record),
	    cmocka_unit_test(test_phase_mapping),
	    cmocka_unit_test(test_hopeless_reasons),
	    cmocka_unit_test(test_exit_file),
	    cmocka_unit_test(test_resume_offset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
