/* lookahead.c: build a queued job's environment before its turn (issue
 * 6).  While a job waits in the local queue and a CPU is spare, the agent
 * writes the job's spec.json into <state_dir>/ahead/<job>-<attempt> and
 * runs `tether-runner envs build DIR` (docs/environments.md, Look-ahead):
 * a cache hit returns at once, a miss builds exactly what the job's runner
 * will look for, under the same cache lock, so the job later starts with a
 * cache hit (or waits on the lock for the build in progress).  One build at
 * a time; the loop watches the child through a pidfd and never waits. */
#include "agent/agent.h"

#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct lookahead {
	pid_t pid;
	int pidfd;
	char *dir, *job;
	int64_t attempt;
};

/* CPUs not taken by running jobs. */
static double ahead_spare_cpus(const struct agent *a)
{
	double used = 0;

	for (const struct att *t = a->atts; t != NULL; t = t->next)
		if (t->state == ATT_RUNNING)
			used += t->cpus > 0 ? t->cpus : 1;
	return a->cap.cpus - used;
}

/* A job whose environment is worth building now: queued, with an
 * environment, and a source the runner can fetch by itself (a snapshot
 * is fetched by the agent only when the job starts). */
static bool ahead_wanted(struct agent *a, struct att *t)
{
	json_t *spec = NULL, *env;
	const char *kind;
	bool want;
	struct err e = {0};

	if (t->state != ATT_QUEUED || t->ahead_done || t->preparing ||
	    t->snapshot != NULL)
		return false;
	t->ahead_done = true; /* decided once per attempt */
	if (launch_load_spec(a, t, &spec, &e) < 0)
		return false;
	env = json_object_get(spec, "environment");
	kind = json_string_value(json_object_get(env, "kind"));
	want = kind != NULL && strcmp(kind, "none") != 0 &&
	       json_object_get(json_object_get(spec, "source"), "snapshot") ==
	           NULL;
	json_decref(spec);
	return want;
}

static void ahead_child(const char *runner, const char *dir)
{
	char *argv[] = {(char *)runner, "envs", "build", (char *)dir, NULL};
	char *out = xasprintf("%s/result.json", dir);
	char *log = xasprintf("%s/runner.log", dir);
	int fd;

	setsid();
	for (fd = 3; fd < 1024; fd++)
		close(fd);
	if ((fd = open("/dev/null", O_RDONLY)) >= 0)
		dup2(fd, 0);
	if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0)
		dup2(fd, 1);
	if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) >= 0)
		dup2(fd, 2);
	execve(runner, argv, launch_env());
	_exit(127);
}

static void ahead_done(struct agent *a)
{
	struct lookahead *l = a->ahead;
	struct err e = {0};

	if (l == NULL)
		return;
	a->ahead = NULL;
	if (l->pidfd >= 0) {
		loop_unwatch(a->loop, l->pidfd);
		close(l->pidfd);
	}
	if (rm_rf(l->dir, &e) < 0)
		log_warn("look-ahead: %s", e.msg);
	free(l->dir);
	free(l->job);
	free(l);
}

/* The build ended: log what it did, clean up, look at the next job. */
static void ahead_on_exit(void *arg, int fd, uint32_t events)
{
	struct agent *a = arg;
	struct lookahead *l = a->ahead;
	char *path, *text = NULL, *log = NULL;
	int status = 0;

	(void)fd;
	(void)events;
	if (waitpid(l->pid, &status, WNOHANG) == 0)
		return;
	path = xasprintf("%s/result.json", l->dir);
	file_read_all(path, 4096, &text, NULL, NULL);
	free(path);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		log_info("job=%s attempt=%lld environment ready ahead: %s",
		         l->job, (long long)l->attempt,
		         text ? strtok(text, "\n") : "");
	} else {
		path = xasprintf("%s/runner.log", l->dir);
		file_read_all(path, 2048, &log, NULL, NULL);
		free(path);
		log_warn("job=%s attempt=%lld look-ahead environment build "
		         "failed (status %d; the job builds it itself): %s",
		         l->job, (long long)l->attempt, status, log ? log : "");
	}
	free(text);
	free(log);
	ahead_done(a);
	agent_kick(a);
}

static int ahead_start(struct agent *a, struct att *t, struct err *e)
{
	struct lookahead *l = xcalloc(1, sizeof(*l));
	char *top = xasprintf("%s/ahead", a->conf.state_dir);
	int r;

	l->pidfd = -1;
	l->job = xstrdup(t->job);
	l->attempt = t->attempt;
	l->dir = xasprintf("%s/%s-%lld", top, t->job, (long long)t->attempt);
	a->ahead = l;
	rm_rf(l->dir, e); /* left by an agent killed during a build */
	if ((r = mkdir_p(l->dir, 0700, e)) < 0 ||
	    (r = launch_write_spec(a, t, l->dir, e)) < 0)
		goto out;
	l->pid = fork();
	if (l->pid < 0) {
		r = err_sys(e, TERR_IO, "fork");
		goto out;
	}
	if (l->pid == 0)
		ahead_child(a->runner_path, l->dir);
	l->pidfd = (int)syscall(SYS_pidfd_open, l->pid, 0);
	if (l->pidfd < 0) {
		r = err_sys(e, TERR_IO, "pidfd_open");
		kill(l->pid, SIGKILL);
		waitpid(l->pid, NULL, 0);
		goto out;
	}
	r = loop_watch(a->loop, l->pidfd, EPOLLIN, ahead_on_exit, a, e);
	if (r == 0)
		log_info("job=%s attempt=%lld building its environment ahead "
		         "(pid %d)",
		         t->job, (long long)t->attempt, (int)l->pid);
out:
	free(top);
	if (r < 0)
		ahead_done(a);
	return r;
}

void lookahead_kick(struct agent *a)
{
	struct err e = {0};

	if (a->ahead != NULL || !a->conf.env_lookahead || a->draining ||
	    a->runner_path == NULL || ahead_spare_cpus(a) < 1.0)
		return;
	for (struct att *t = a->atts; t != NULL; t = t->next) {
		if (!ahead_wanted(a, t))
			continue;
		if (ahead_start(a, t, &e) < 0)
			log_warn("job=%s look-ahead: %s", t->job, e.msg);
		return;
	}
}

/* The agent stops: the build goes on (its lock keeps the cache sane); its
 * directory is left for the next start's clean-up. */
void lookahead_free(struct agent *a)
{
	struct lookahead *l = a->ahead;

	if (l == NULL)
		return;
	if (l->pidfd >= 0)
		close(l->pidfd);
	free(l->dir);
	free(l->job);
	free(l);
	a->ahead = NULL;
}

void lookahead_cancel(struct agent *a, const char *job, int64_t attempt,
                      const char *reason)
{
	struct lookahead *l = a->ahead;
	struct err e = {0};

	if (l == NULL || strcmp(l->job, job) != 0 || l->attempt != attempt)
		return;
	log_info("job=%s attempt=%lld stopping its look-ahead build (%s)", job,
	         (long long)attempt, reason);
	if (attempt_cancel_write(l->dir, reason, a->conf.kill_grace_ms, &e) < 0)
		log_warn("job=%s look-ahead: %s", job, e.msg);
}
