/* Unit tests of common/attempt.c: the attempt-directory file formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_lease_cancel_state(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX", reason[32], *text = NULL;
	struct attempt_state st = {0}, back;
	struct err e = {0};
	int64_t v, grace;
	int fd;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(attempt_lease_read(dir, &v, &e), TERR_NOTFOUND);
	assert_int_equal(attempt_lease_write(dir, 123456, 1790000000000, &e),
	                 0);
	assert_int_equal(attempt_lease_read(dir, &v, &e), 0);
	assert_int_equal(v, 123456);

	assert_int_equal(attempt_cancel_read(dir, reason, &grace, &e),
	                 TERR_NOTFOUND);
	assert_int_equal(attempt_cancel_write(dir, "timed_out", 2500, &e), 0);
	assert_int_equal(attempt_cancel_read(dir, reason, &grace, &e), 0);
	assert_string_equal(reason, "timed_out");
	assert_int_equal(grace, 2500);

	st.runner_pid = getpid();
	st.runner_start = proc_start_time(getpid());
	assert_true(st.runner_start > 0);
	snprintf(st.phase, sizeof(st.phase), "run");
	snprintf(st.launcher_ref, sizeof(st.launcher_ref), "abc123");
	assert_int_equal(attempt_state_write(dir, &st, true, &e), 0);
	assert_int_equal(attempt_state_read(dir, &back, &e), 0);
	assert_int_equal(back.runner_pid, getpid());
	assert_string_equal(back.phase, "run");
	assert_string_equal(back.launcher_ref, "abc123");
	assert_true(attempt_runner_alive(&back));
	back.runner_start++;
	assert_false(attempt_runner_alive(&back)); /* pid reuse detected */

	char *path = attempt_path(dir, ATTEMPT_EVENTS);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	json_t *ev = json_pack("{s:i, s:s}", "seq", 1, "type", "started");
	assert_int_equal(attempt_event_append(fd, ev, &e), 0);
	assert_int_equal(attempt_event_append(fd, ev, &e), 0);
	json_decref(ev);
	close(fd);
	assert_int_equal(file_read_all(path, 4096, &text, NULL, &e), 0);
	assert_string_equal(text, "{\"seq\":1,\"type\":\"started\"}\n"
	                          "{\"seq\":1,\"type\":\"started\"}\n");
	free(text);
	free(path);
	assert_int_equal(rm_rf(dir, &e), 0);
}

/* Durations are written as people read them (issue 28): 300.348, not
 * 300.34800000000001; times keep their milliseconds. */
static void test_event_reals(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX", *text = NULL, *path;
	struct err e = {0};
	json_t *ev;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = attempt_path(dir, ATTEMPT_EVENTS);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	ev = json_pack("{s:i, s:{s:f, s:f}, s:f}", "seq", 2, "durations", "run",
	               300348 / 1000.0, "env", 0.1 + 0.2, "time",
	               1790000012.345);
	assert_int_equal(attempt_event_append(fd, ev, &e), 0);
	json_decref(ev);
	close(fd);
	assert_int_equal(file_read_all(path, 4096, &text, NULL, &e), 0);
	assert_string_equal(text, "{\"durations\":{\"env\":0.3,\"run\":"
	                          "300.348},\"seq\":2,\"time\":"
	                          "1790000012.345}\n");
	free(text);
	free(path);
	assert_int_equal(rm_rf(dir, &e), 0);
}

/* Settings a runner reads when spec.json lacks them: one set of defaults. */
static void test_settings_defaults(void **state)
{
	struct attempt_settings s;
	struct err e = {0};
	json_t *empty = json_object();

	(void)state;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    attempt_settings_parse(i ? empty : NULL, &s, &e), 0);
		assert_string_equal(s.state_dir, "/var/lib/tether");
		assert_string_equal(s.job_user, "tether-job");
		assert_string_equal(s.cgroup_parent, "tether");
		assert_string_equal(s.env_dir, "/var/lib/tether/envs");
		assert_string_equal(s.default_python, "/usr/bin/python3");
		assert_string_equal(s.docker_socket, "/var/run/docker.sock");
		assert_string_equal(s.launcher, "sandbox");
		assert_null(s.conda_tool);
		assert_null(s.agent_id);
		assert_null(s.known_hosts);
		assert_null(s.slurm.partition);
		assert_int_equal(s.kill_grace_ms, 10000);
		assert_int_equal(s.default_pids, 4096);
		assert_int_equal(s.max_log_bytes, 10737418240LL);
		assert_int_equal(s.snapshot_max_entries, 1000000);
		assert_int_equal(s.snapshot_max_bytes, 2147483648LL);
		assert_int_equal(s.source_max_bytes, 2147483648LL);
		assert_int_equal(s.env_budget_bytes, 0);
		assert_int_equal(s.attempt_max_disk, 0);
		assert_int_equal(s.disk_check_ms, 1000);
		assert_int_equal(s.slurm.poll_ms, 5000);
		assert_false(s.slurm.sstat);
		assert_false(s.docker_readonly_rootfs);
		assert_int_equal(s.nmounts, 0);
		assert_int_equal(s.ngpus, 0);
		attempt_settings_free(&s);
	}
	/* null means "the default" too (the agent writes conda_tool: null) */
	json_object_set_new(empty, "docker_socket", json_null());
	assert_int_equal(attempt_settings_parse(empty, &s, &e), 0);
	assert_string_equal(s.docker_socket, "/var/run/docker.sock");
	attempt_settings_free(&s);
	json_decref(empty);
}

static void fill(struct attempt_settings *s)
{
	attempt_settings_init(s);
	free(s->state_dir);
	s->state_dir = xstrdup("/srv/t");
	free(s->docker_socket);
	s->docker_socket = xstrdup("/run/user/5/docker.sock");
	free(s->launcher);
	s->launcher = xstrdup("slurm");
	s->conda_tool = xstrdup("micromamba");
	s->agent_id = xstrdup("ag-7");
	s->git_ca_file = xstrdup("/etc/ca.pem");
	s->slurm.partition = xstrdup("gpu");
	s->slurm.qos = xstrdup("high");
	s->slurm.poll_ms = 250;
	s->slurm.sstat = true;
	s->kill_grace_ms = 2500;
	s->default_pids = 77;
	s->max_log_bytes = 12345;
	s->env_budget_bytes = 1 << 20;
	s->attempt_max_disk = 999;
	s->disk_check_ms = 300;
	s->docker_readonly_rootfs = true;
	s->mounts = xcalloc(2, sizeof(*s->mounts));
	s->mounts[0] = (struct attempt_mount){xstrdup("/data"), true};
	s->mounts[1] = (struct attempt_mount){xstrdup("/scratch"), false};
	s->nmounts = 2;
	s->gpus = xcalloc(2, sizeof(int));
	s->gpus[0] = 3;
	s->gpus[1] = 1;
	s->ngpus = 2;
}

/* What the agent writes is what the runner reads, through spec.json. */
static void test_settings_round_trip(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX";
	struct attempt_settings s, b;
	struct err e = {0};
	json_t *spec = json_pack("{s:[s]}", "command", "true"), *doc = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	fill(&s);
	assert_int_equal(attempt_spec_write(dir, "42", 3, spec, &s, &e), 0);
	assert_int_equal(attempt_spec_read(dir, &doc, &e), 0);
	assert_string_equal(json_string_value(json_object_get(doc, "job")),
	                    "42");
	assert_int_equal(json_integer_value(json_object_get(doc, "attempt")),
	                 3);
	assert_true(json_equal(json_object_get(doc, "spec"), spec));
	assert_int_equal(
	    attempt_settings_parse(json_object_get(doc, "runner"), &b, &e), 0);
	assert_string_equal(b.state_dir, "/srv/t");
	assert_string_equal(b.docker_socket, "/run/user/5/docker.sock");
	assert_string_equal(b.launcher, "slurm");
	assert_string_equal(b.conda_tool, "micromamba");
	assert_string_equal(b.agent_id, "ag-7");
	assert_string_equal(b.git_ca_file, "/etc/ca.pem");
	assert_null(b.known_hosts);
	assert_string_equal(b.slurm.partition, "gpu");
	assert_string_equal(b.slurm.qos, "high");
	assert_null(b.slurm.account);
	assert_int_equal(b.slurm.poll_ms, 250);
	assert_true(b.slurm.sstat);
	assert_int_equal(b.kill_grace_ms, 2500);
	assert_int_equal(b.default_pids, 77);
	assert_int_equal(b.max_log_bytes, 12345);
	assert_int_equal(b.env_budget_bytes, 1 << 20);
	assert_int_equal(b.attempt_max_disk, 999);
	assert_int_equal(b.disk_check_ms, 300);
	assert_true(b.docker_readonly_rootfs);
	assert_int_equal(b.nmounts, 2);
	assert_string_equal(b.mounts[1].source, "/scratch");
	assert_true(b.mounts[0].readonly);
	assert_false(b.mounts[1].readonly);
	assert_int_equal(b.ngpus, 2);
	assert_int_equal(b.gpus[0], 3);
	assert_int_equal(b.gpus[1], 1);
	attempt_settings_free(&b);
	attempt_settings_free(&s);
	json_decref(doc);
	json_decref(spec);
	assert_int_equal(rm_rf(dir, &e), 0);
}

/* The "runner" object as the agent wrote it before the settings moved
 * here (agent/launch.c, same values): the writer keeps its bytes, so an
 * attempt dir of either agent reads the same. */
static void test_settings_bytes(void **state)
{
	struct attempt_settings s;
	json_t *old, *now;
	char *a, *b;

	(void)state;
	fill(&s);
	s.slurm.sstat = false; /* not an agent setting */
	old = json_pack(
	    "{s:s, s:s, s:f, s:I, s:s, s:[{s:s, s:b}, {s:s, s:b}], s:s, s:s, "
	    "s:s?, s:I, s:s, s:s, s:[i, i], s:{s:s?, s:s?, s:s?, s:s?, s:I}, "
	    "s:I, s:s?, s:s?, s:b, s:s}",
	    "state_dir", "/srv/t", "job_user", "tether-job", "kill_grace", 2.5,
	    "default_pids", (json_int_t)77, "cgroup_parent", "tether",
	    "allowed_mounts", "source", "/data", "readonly", 1, "source",
	    "/scratch", "readonly", 0, "env_dir", "/var/lib/tether/envs",
	    "default_python", "/usr/bin/python3", "conda_tool", "micromamba",
	    "max_log_bytes", (json_int_t)12345, "launcher", "slurm",
	    "docker_socket", "/run/user/5/docker.sock", "gpus", 3, 1, "slurm",
	    "partition", "gpu", "shared_dir", NULL, "account", NULL, "qos",
	    "high", "poll_ms", (json_int_t)250, "env_budget_bytes",
	    (json_int_t)(1 << 20), "known_hosts", NULL, "git_ca_file",
	    "/etc/ca.pem", "docker_readonly_rootfs", 1, "agent_id", "ag-7");
	json_object_set_new(old, "snapshot_max_bytes",
	                    json_integer(2147483648LL));
	json_object_set_new(old, "snapshot_max_entries", json_integer(1000000));
	json_object_set_new(old, "source_max_bytes",
	                    json_integer(2147483648LL));
	json_object_set_new(old, "attempt_max_disk", json_integer(999));
	json_object_set_new(old, "disk_check_ms", json_integer(300));
	now = attempt_settings_json(&s);
	a = json_dumps(old, JSON_INDENT(1));
	b = json_dumps(now, JSON_INDENT(1));
	assert_string_equal(a, b);
	free(a);
	free(b);
	json_decref(old);
	json_decref(now);
	attempt_settings_free(&s);
}

/* A malformed setting is refused naming runner.<key>. */
static void test_settings_malformed(void **state)
{
	static const char *const bad[][2] = {
	    {"{\"kill_grace\": \"ten\"}", "runner.kill_grace"},
	    {"{\"kill_grace\": 100000}", "runner.kill_grace"},
	    {"{\"default_pids\": -1}", "runner.default_pids"},
	    {"{\"job_user\": 7}", "runner.job_user"},
	    {"{\"launcher\": \"podman\"}", "runner.launcher"},
	    {"[1]", "runner"},
	};
	struct attempt_settings s;
	struct err e = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *o = json_loads(bad[i][0], 0, NULL);
		assert_non_null(o);
		assert_int_equal(attempt_settings_parse(o, &s, &e), TERR_INVAL);
		assert_non_null(strstr(e.msg, bad[i][1]));
		attempt_settings_free(&s);
		json_decref(o);
	}
}

static void put(const char *dir, const char *name, const char *text)
{
	char *path = attempt_path(dir, name);
	struct err e = {0};

	assert_int_equal(file_write_atomic(path, text, strlen(text), 0600, &e),
	                 0);
	free(path);
}

/* result.json: round trip, missing, malformed. */
static void test_result(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX", *text = NULL, *path;
	struct err e = {0};
	json_t *res, *back = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_false(attempt_result_exists(dir));
	assert_int_equal(attempt_result_read(dir, &back, &e), TERR_NOTFOUND);
	assert_null(back);
	res = json_pack("{s:s, s:i, s:[{s:s, s:i}], s:f}", "reason",
	                "succeeded", "exit_code", 0, "outputs", "path", "a.txt",
	                "size", 3, "duration", 1.5);
	assert_int_equal(attempt_result_write(dir, res, &e), 0);
	assert_true(attempt_result_exists(dir));
	path = attempt_path(dir, ATTEMPT_RESULT);
	assert_int_equal(file_read_all(path, 4096, &text, NULL, &e), 0);
	assert_string_equal(text, "{\"duration\":1.5,\"exit_code\":0,"
	                          "\"outputs\":[{\"path\":\"a.txt\",\"size\":3}"
	                          "],\"reason\":\"succeeded\"}");
	free(text);
	assert_int_equal(attempt_result_read(dir, &back, &e), 0);
	assert_true(json_equal(res, back));
	json_decref(back);
	back = NULL;
	/* a torn or hostile file: an error naming the file, nothing read */
	put(dir, ATTEMPT_RESULT, "{\"reason\": \"succ");
	assert_true(attempt_result_read(dir, &back, &e) < 0);
	assert_null(back);
	assert_non_null(strstr(e.msg, "result.json"));
	json_decref(res);
	free(path);
	assert_int_equal(rm_rf(dir, &e), 0);
}

/* A spec.json from the hand of an older agent (no optional keys) still
 * reads, with the defaults. */
static void test_spec_old(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX";
	struct attempt_settings s;
	struct err e = {0};
	json_t *doc = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	put(dir, ATTEMPT_SPEC,
	    "{\"job\": \"7\", \"attempt\": 1, \"spec\": {\"command\": "
	    "[\"true\"]}, \"runner\": {\"state_dir\": \"/s\", \"kill_grace\": "
	    "0.5, \"launcher\": \"docker\", \"conda_tool\": null, \"slurm\": "
	    "{\"partition\": null, \"shared_dir\": \"\"}}}");
	assert_int_equal(attempt_spec_read(dir, &doc, &e), 0);
	assert_int_equal(
	    attempt_settings_parse(json_object_get(doc, "runner"), &s, &e), 0);
	assert_string_equal(s.state_dir, "/s");
	assert_int_equal(s.kill_grace_ms, 500);
	assert_string_equal(s.launcher, "docker");
	assert_null(s.conda_tool);
	assert_null(s.slurm.shared_dir); /* "" is none */
	assert_int_equal(s.snapshot_max_entries, 1000000);
	attempt_settings_free(&s);
	json_decref(doc);
	assert_int_equal(rm_rf(dir, &e), 0);
}

struct lines {
	int n, bad, stop_at;
	char seen[8][32];
};

static int count_line(void *arg, json_t *ev, const char *line, struct err *e)
{
	struct lines *l = arg;

	(void)e;
	if (l->n == l->stop_at)
		return TERR_IO;
	if (ev == NULL)
		l->bad++;
	snprintf(l->seen[l->n++ % 8], 32, "%s", line);
	return 0;
}

/* events: complete lines only, malformed ones reported, fn can stop. */
static void test_events_split(void **state)
{
	char dir[] = "/tmp/tattemptXXXXXX", buf[128];
	const char *text = "{\"seq\":1}\nnot json\n{\"seq\":3}\n{\"seq\":";
	struct lines l = {.stop_at = -1};
	struct err e = {0};
	size_t used;
	int rc;

	(void)state;
	snprintf(buf, sizeof(buf), "%s", text);
	used = attempt_events_split(buf, strlen(text), count_line, &l, &rc, &e);
	assert_int_equal(rc, 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.bad, 1);
	assert_string_equal(l.seen[2], "{\"seq\":3}");
	assert_int_equal(used, strlen("{\"seq\":1}\nnot json\n{\"seq\":3}\n"));
	/* fn fails on the second line: only the first counts as used */
	memset(&l, 0, sizeof(l));
	l.stop_at = 1;
	snprintf(buf, sizeof(buf), "%s", text);
	used = attempt_events_split(buf, strlen(text), count_line, &l, &rc, &e);
	assert_int_equal(rc, TERR_IO);
	assert_int_equal(used, strlen("{\"seq\":1}\n"));
	/* the file: missing, then read whole */
	assert_non_null(mkdtemp(dir));
	memset(&l, 0, sizeof(l));
	l.stop_at = -1;
	assert_int_equal(attempt_events_read(dir, count_line, &l, &e),
	                 TERR_NOTFOUND);
	put(dir, ATTEMPT_EVENTS, text);
	assert_int_equal(attempt_events_read(dir, count_line, &l, &e), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(rm_rf(dir, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lease_cancel_state),
	    cmocka_unit_test(test_event_reals),
	    cmocka_unit_test(test_settings_defaults),
	    cmocka_unit_test(test_settings_round_trip),
	    cmocka_unit_test(test_settings_bytes),
	    cmocka_unit_test(test_settings_malformed),
	    cmocka_unit_test(test_result),
	    cmocka_unit_test(test_spec_old),
	    cmocka_unit_test(test_events_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
