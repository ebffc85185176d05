/* env-run.c: running a builder process (python -m venv, pip, micromamba)
 * for an environment build.
 *
 * execve with an argv array (never a shell), in the job's work directory.
 * When the runner is root (a node), in the build's sandbox (env-box.c):
 * the job user, the job's namespaces, cgroup and limits, the build
 * directory writable at the environment's final path (env.c).  Without
 * root (a developer's runs) only in a process group of its own.  Output
 * goes into the job log line by line as "[env] ..."; the attempt's cancel
 * and lease files are checked once a second and stop the build: SIGTERM,
 * kill_grace, SIGKILL to every process of it. */
#include "runner/env/env.h"

#include "common/err.h"
#include "common/util.h"
#include "runner/source/source.h"
#include "runner/fence.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LINE_MAX_LOG 4096

/* While a directory env is built: the builder sees tmp mounted on final. */
static struct {
	const char *tmp, *final;
} env_bind;

static bool env_quiet; /* env_run_capture: output to tail only */

void env_run_bind(const char *tmp, const char *final)
{
	env_bind.tmp = tmp;
	env_bind.final = final;
}

/* Child side of env_run: output to the pipe, drop to the job user, exec. */
static void run_child(struct runner *r, int wfd, char *const argv[],
                      char *const envp[])
{
	int devnull = open("/dev/null", O_RDONLY);
	sigset_t none;

	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(wfd, 1) < 0 ||
	    dup2(wfd, 2) < 0)
		_exit(126);
	close_range(3, ~0U, 0);
	/* its own group, so that a stop reaches pip's children; default
	 * signals (the runner blocks some for its signalfd) */
	setpgid(0, 0);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (r->work_dir && chdir(r->work_dir) < 0)
		_exit(126);
	execve(argv[0], argv, envp ? envp : environ);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Keep the last tail_size-1 bytes of output in tail. */
static void tail_add(char *tail, size_t size, const char *line)
{
	size_t have, add = strlen(line) + 1;

	if (tail == NULL || size < 2)
		return;
	have = strlen(tail);
	while (have + add >= size && have > 0) {
		char *nl = strchr(tail, '\n');
		size_t cut = nl ? (size_t)(nl - tail) + 1 : have;
		memmove(tail, tail + cut, have - cut + 1);
		have -= cut;
	}
	if (add >= size)
		line += add - size + 1;
	snprintf(tail + have, size - have, "%s\n", line);
}

/* Log complete lines of buf (all of it at eof); returns what is left. */
static size_t pump_lines(struct runner *r, char *buf, size_t len, bool eof,
                         char *tail, size_t tsize)
{
	char *nl;

	while ((nl = memchr(buf, '\n', len)) != NULL || len == LINE_MAX_LOG ||
	       (eof && len > 0)) {
		size_t l = nl ? (size_t)(nl - buf) : len;
		buf[l] = '\0';
		if (!env_quiet)
			runner_logf(r, "env", "%s", buf);
		tail_add(tail, tsize, buf);
		l += nl ? 1 : 0;
		memmove(buf, buf + l, len - l);
		len -= l;
	}
	return len;
}

/* Copy the child's output into the job log line by line until EOF, or until
 * the attempt must stop (cancel file, lease): then return the reason. */
static const char *run_pump(struct runner *r, int rfd, char *tail, size_t tsize)
{
	struct pollfd pfd = {.fd = rfd, .events = POLLIN};
	int64_t next = now_mono_ms() + FENCE_CHECK_MS;
	char buf[LINE_MAX_LOG + 1];
	const char *stop;
	size_t len = 0;
	ssize_t n;

	for (;;) {
		int pr = poll(&pfd, 1, FENCE_CHECK_MS);
		if (now_mono_ms() >= next) {
			next = now_mono_ms() + FENCE_CHECK_MS;
			if ((stop = source_fenced(r)) != NULL)
				return stop;
		}
		if (pr <= 0)
			continue;
		n = read(rfd, buf + len, LINE_MAX_LOG - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			len += (size_t)n;
		len = pump_lines(r, buf, len, n <= 0, tail, tsize);
		if (n <= 0)
			return NULL;
	}
}

/* Stop a builder's process group: TERM, a grace period, KILL; reap it. */
static void run_stop(pid_t pid, int64_t grace_ms)
{
	int64_t end = now_mono_ms() + grace_ms;
	int status;

	kill(-pid, SIGTERM);
	while (now_mono_ms() < end && waitpid(pid, &status, WNOHANG) == 0)
		usleep(20 * 1000);
	kill(-pid, SIGKILL);
	waitpid(pid, &status, 0);
}

/* Without root: fork, exec in the work directory; output on *rfd. */
static int run_plain(struct runner *r, char *const argv[], char *const envp[],
                     pid_t *pid, int *rfd, struct err *e)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_sys(e, TERR_IO, "pipe");
	if ((*pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return err_sys(e, TERR_IO, "fork");
	}
	if (*pid == 0)
		run_child(r, fds[1], argv, envp);
	close(fds[1]);
	*rfd = fds[0];
	return 0;
}

static int run_status(int status, const char *name, struct err *e)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return err_set(e, TERR_FAIL, "%s exited with status %d", name,
		               WEXITSTATUS(status));
	return err_set(e, TERR_FAIL, "%s was killed by signal %d", name,
	               WTERMSIG(status));
}

int env_run(struct runner *r, char *const argv[], char *const envp[],
            char *tail, size_t tail_size, struct err *e)
{
	struct env_box *box = NULL;
	const char *stop;
	pid_t pid = -1;
	int rfd = -1, status, rc;

	if (tail && tail_size)
		tail[0] = '\0';
	rc = geteuid() == 0
	         ? env_box_start(r, env_bind.tmp, env_bind.final, argv,
	                         envp ? envp : environ, &box, &rfd, e)
	         : run_plain(r, argv, envp, &pid, &rfd, e);
	if (rc < 0)
		return err_wrap(e, "run %s", argv[0]);
	stop = run_pump(r, rfd, tail, tail_size);
	close(rfd);
	if (stop != NULL) {
		runner_logf(r, "env", "stopping %s: %s", argv[0], stop);
		if (box != NULL)
			env_box_stop(box, r->set.kill_grace_ms);
		else
			run_stop(pid, r->set.kill_grace_ms);
		return err_set(e, TERR_CONFLICT,
		               "%s while building the environment (%s stopped)",
		               stop, argv[0]);
	}
	if (box != NULL)
		return env_box_finish(box, argv[0], e);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return err_sys(e, TERR_IO, "waitpid");
	return run_status(status, argv[0], e);
}

int env_run_capture(struct runner *r, char *const argv[], char *out,
                    size_t size, struct err *e)
{
	const char *tmp = env_bind.tmp, *final = env_bind.final;
	int rc;

	env_quiet = true;
	env_run_bind(NULL, NULL);
	rc = env_run(r, argv, NULL, out, size, e);
	env_run_bind(tmp, final);
	env_quiet = false;
	return rc;
}
