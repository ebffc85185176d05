#include "common/cmdrun.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the child: wire the pipes, reset signals, exec. */
static void cmd_child(const char *const *argv, int out_w, int err_w)
{
	sigset_t none;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (null < 0 || dup2(null, 0) < 0 || dup2(out_w, 1) < 0 ||
	    dup2(err_w, 2) < 0)
		_exit(127);
	execvp(argv[0], (char *const *)argv);
	_exit(127);
}

/* Read what is there on fd into b (past its cap: drop); *open = false at
 * EOF. */
static void cmd_drain(int fd, struct buf *b, bool *open)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		*open = false;
		return;
	}
	if (b != NULL && b->len + (size_t)n <= b->max)
		buf_append(b, tmp, (size_t)n, NULL);
}

/* Pump both pipes until EOF or the deadline; TERR_TIMEOUT past it. */
static int cmd_pump(int out_r, int err_r, struct buf *out, struct buf *errb,
                    int64_t deadline)
{
	bool out_open = true, err_open = true;

	while (out_open || err_open) {
		struct pollfd p[2] = {{out_open ? out_r : -1, POLLIN, 0},
		                      {err_open ? err_r : -1, POLLIN, 0}};
		int wait = 1000;

		if (deadline > 0) {
			int64_t left = deadline - now_mono_ms();
			if (left <= 0)
				return TERR_TIMEOUT;
			wait = left < 1000 ? (int)left : 1000;
		}
		if (poll(p, 2, wait) < 0 && errno != EINTR)
			return TERR_IO;
		if (p[0].revents)
			cmd_drain(out_r, out, &out_open);
		if (p[1].revents)
			cmd_drain(err_r, errb, &err_open);
	}
	return 0;
}

/* Reap pid; -1 when someone else reaped it. */
static int cmd_reap(pid_t pid)
{
	int ws;

	while (waitpid(pid, &ws, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (WIFEXITED(ws))
		return WEXITSTATUS(ws);
	return WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
}

int cmd_capture(const char *const *argv, struct buf *out, struct buf *errb,
                int64_t timeout_ms, int *status, struct err *e)
{
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, r = 0;
	int64_t deadline = timeout_ms > 0 ? now_mono_ms() + timeout_ms : 0;
	pid_t pid;

	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		r = err_sys(e, TERR_IO, "%s: pipe", argv[0]);
		goto out;
	}
	if ((pid = fork()) < 0) {
		r = err_sys(e, TERR_IO, "%s: fork", argv[0]);
		goto out;
	}
	if (pid == 0)
		cmd_child(argv, po[1], pe[1]);
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	r = cmd_pump(po[0], pe[0], out, errb, deadline);
	if (r == TERR_TIMEOUT)
		kill(pid, SIGKILL);
	*status = cmd_reap(pid);
	if (r == TERR_TIMEOUT)
		err_set(e, r, "%s: no answer within %lld ms", argv[0],
		        (long long)timeout_ms);
	else if (r < 0)
		err_sys(e, r, "%s: poll", argv[0]);
	else if (*status == 127)
		r = err_set(e, TERR_IO, "%s: could not run it (not on PATH?)",
		            argv[0]);
out:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return r;
}
