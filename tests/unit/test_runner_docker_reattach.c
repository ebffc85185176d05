/* The docker launcher's reattach() against the real engine: a runner
 * "crashes" mid-job (its follower stops, unread output is lost with it),
 * a new one re-attaches by launcher_ref and the log continues without
 * loss or duplication; the container is the same, never restarted.
 * Skipped (77) when not root, without an engine or the test base image.
 * The supervisor's log helpers are stubbed here (plain appends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/util.h"
#include "runner/docker/docker.h"
#include "runner/docker/launcher-docker.h"
#include "runner/launcher.h"
#include "runner/runner.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BASE  "tether-test-base:bookworm"
#define LINES 40

static const char *sock = ATTEMPT_DEF_DOCKER_SOCKET;

void runner_log_bytes(struct runner *r, const char *data, size_t len)
{
	assert_int_equal(fd_write_all(r->log_fd, data, len, NULL), 0);
}

void runner_logf(struct runner *r, const char *prefix, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n = snprintf(line, sizeof(line), "[%s] ", prefix);

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	runner_log_bytes(r, line, (size_t)n);
}

int runner_save_state(struct runner *r, struct err *e)
{
	return attempt_state_write(r->dir, &r->state, true, e);
}

int runner_event(struct runner *r, json_t *event, struct err *e)
{
	return 0;
}

static void runner_init(struct runner *r, char *dir, struct jobspec *spec)
{
	static char *argv[] = {
	    "sh", "-c",
	    "echo START; i=0; while [ $i -lt 40 ]; do echo line $i; "
	    "i=$((i+1)); sleep 0.05; done",
	    NULL};
	static char *envp[] = {"A=1", NULL};
	char *log;

	memset(r, 0, sizeof(*r));
	r->dir = dir;
	r->job_id = "R1";
	r->attempt = 1;
	r->spec = spec;
	/* r->set zeroed but for these (never freed): no allowed mounts, no
	 * GPUs */
	r->set.state_dir = "/var/tmp";
	r->set.docker_socket = (char *)sock;
	r->work_dir = attempt_path(dir, "work");
	r->outputs_dir = attempt_path(dir, "outputs");
	r->checkpoints_dir = attempt_path(dir, "checkpoints");
	r->uid = 65534;
	r->gid = 65534;
	r->set.default_pids = 64;
	r->argv = argv;
	r->envp = envp;
	r->env.image = BASE;
	log = attempt_path(dir, ATTEMPT_LOG);
	r->log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(r->log_fd >= 0);
	free(log);
}

static void runner_fini(struct runner *r)
{
	free(r->work_dir);
	free(r->outputs_dir);
	free(r->checkpoints_dir);
	close(r->log_fd);
}

/* Pump out_fd into the log until `until` is in it (or EOF and done). */
static void pump(struct runner *r, int out_fd, int done_fd, const char *until)
{
	char buf[4096], *log = NULL;
	bool eof = false, done = false;
	ssize_t n;

	while (!(eof && done)) {
		struct pollfd p[2] = {{out_fd, POLLIN, 0},
		                      {done_fd, POLLIN, 0}};

		assert_true(poll(p, 2, 30000) > 0);
		if (!eof && p[0].revents) {
			n = read(out_fd, buf, sizeof(buf));
			assert_true(n >= 0);
			eof = n == 0;
			runner_log_bytes(r, buf, (size_t)n);
		}
		if (p[1].revents)
			done = true;
		if (until != NULL) {
			char *path = attempt_path(r->dir, ATTEMPT_LOG);
			assert_int_equal(
			    file_read_all(path, 1 << 20, &log, NULL, NULL), 0);
			free(path);
			if (strstr(log, until)) {
				free(log);
				return;
			}
			free(log);
		}
	}
}

static void test_reattach(void **state)
{
	char dir[] = "/var/tmp/tdockreXXXXXX", *log = NULL, *want;
	struct runner r1, r2;
	struct jobspec *spec = NULL;
	struct launch_exit ex;
	struct dlaunch *dl;
	struct docker *d = NULL;
	struct err e = {0};
	int out_fd, done_fd;
	char *path, *p, l[32];
	int count = 0;
	const char *text = "{\"name\": \"t\", \"command\": [\"x\"]}";
	char id[128];

	assert_non_null(mkdtemp(dir));
	assert_int_equal(jobspec_parse(text, strlen(text), &spec, &e), 0);
	runner_init(&r1, dir, spec);
	runner_logf(&r1, "tether", "prelude");
	assert_int_equal(launcher_docker.prepare(&r1, &e), 0);
	assert_int_equal(launcher_docker.start(&r1, &out_fd, &done_fd, &e), 0);
	snprintf(id, sizeof(id), "%s", r1.state.launcher_ref);
	pump(&r1, out_fd, done_fd, "line 5\n");
	/* crash: the follower dies, whatever sat in the pipe is lost */
	dl = r1.launcher_data;
	dl->stop = 1;
	dlaunch_join(dl);
	docker_close(dl->d);
	free(dl->mem_dir);
	free(dl->cpu_dir);
	free(dl);
	close(out_fd);
	close(done_fd);
	runner_fini(&r1);
	usleep(300000);

	runner_init(&r2, dir, spec);
	assert_int_equal(attempt_state_read(dir, &r2.state, &e), 0);
	assert_string_equal(r2.state.launcher_ref, id);
	runner_logf(&r2, "tether", "runner restarted");
	assert_int_equal(launcher_docker.reattach(&r2, &out_fd, &done_fd, &e),
	                 0);
	pump(&r2, out_fd, done_fd, NULL);
	assert_int_equal(launcher_docker.collect(&r2, &ex, &e), 0);
	assert_int_equal(ex.exit_code, 0);
	assert_false(ex.oom);
	assert_true(ex.peak_memory_bytes > 0);
	assert_true(ex.cpu_seconds > 0);
	launcher_docker.cleanup(&r2);

	want = attempt_path(dir, ATTEMPT_LOG);
	assert_int_equal(file_read_all(want, 1 << 20, &log, NULL, &e), 0);
	free(want);
	assert_int_equal(strncmp(log, "[tether] prelude\nSTART\n", 23), 0);
	assert_null(strstr(log + 23, "START")); /* not restarted */
	/* every line once, in order */
	p = log;
	for (int i = 0; i < LINES; i++) {
		snprintf(l, sizeof(l), "line %d\n", i);
		p = strstr(p, l);
		assert_non_null(p);
		p += strlen(l);
	}
	for (p = log; (p = strstr(p, "line ")) != NULL; p++)
		count++;
	assert_int_equal(count, LINES);
	assert_non_null(strstr(log, "[tether] runner restarted\n"));
	/* removed after collect */
	assert_int_equal(docker_open(sock, &d, &e), 0);
	path = xasprintf("/containers/%s/json", id);
	assert_int_equal(docker_call(d, "GET", path, NULL, NULL, &e),
	                 TERR_NOTFOUND);
	free(path);
	docker_close(d);
	free(log);
	runner_fini(&r2);
	jobspec_free(spec);
	rm_rf(dir, &e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reattach),
	};
	struct docker *d = NULL;
	struct err e = {0};

	if (geteuid() != 0) {
		printf("skipped: needs root (chown to the job user)\n");
		return 77;
	}
	if (docker_open(sock, &d, &e) < 0) {
		printf("skipped: no docker engine: %s\n", e.msg);
		return 77;
	}
	if (docker_image_inspect(d, BASE, NULL, &e) < 0) {
		printf("skipped: no %s (run the docker bb tests once)\n", BASE);
		docker_close(d);
		return 77;
	}
	docker_close(d);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
