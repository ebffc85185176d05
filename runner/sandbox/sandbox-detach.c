/* sandbox-detach.c: a sandbox that outlives its runner (the spark
 * launcher's driver; docs/sandbox.md, "A detached sandbox").
 *
 * pid 1 has no PR_SET_PDEATHSIG.  It copies the job's output pipe into
 * <attempt>/sandbox.out (root's, 0600; the job only ever holds the pipe, so
 * it can neither truncate nor rewrite what was written) and, when the job
 * ended, kills what is left in the namespace, drains the pipe and writes the
 * job's status record to <attempt>/sandbox.status: only root's pid 1 writes
 * it, from an fd the runner opened before the clone (the job can neither
 * reach the attempt directory nor ptrace pid 1), so the job cannot forge a
 * "succeeded".
 *
 * The runner follows the sandbox by a thread that copies sandbox.out into
 * the launcher's out pipe and polls a pidfd of pid 1; state.json keeps pid
 * 1's pid and start time and the log's size when the output began, so a
 * restarted runner adopts the same sandbox (pidfd_open after checking the
 * start time) and resumes sandbox.out at the first byte the log lacks. */
#include "runner/sandbox/sandbox.h"
#include "common/attempt.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAIL_TICK_MS 100

/* ---- pid 1's side ---------------------------------------------------- */

/* Copy what the pipe holds into the file (past cap: read and dropped);
 * false at EOF. */
static bool copy_out(int rd, int file_fd, int64_t cap, int64_t *written)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(rd, buf, sizeof(buf)), w = 0;
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EINTR || errno == EAGAIN;
		if (cap > 0 && *written >= cap)
			continue;
		while (w < n) {
			ssize_t k = write(file_fd, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break; /* disk full: the job's bytes are lost */
			w += k;
		}
		*written += w;
	}
}

void sandbox_detached_follow(struct sandbox_cfg *c, pid_t job, int rd,
                             int file_fd, bool reported)
{
	struct pollfd p[2] = {{rd, POLLIN, 0}, {-1, POLLIN, 0}};
	int64_t written = 0;
	sigset_t chld;
	int st = 0, code = -1, sig = 0;
	pid_t q;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	p[1].fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	fcntl(rd, F_SETFL, O_NONBLOCK);
	for (bool done = false; !done;) {
		struct signalfd_siginfo si;
		while ((q = waitpid(-1, &st, WNOHANG)) > 0)
			if (q == job) {
				code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
				sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
				done = true;
			}
		if (done || (q < 0 && errno == ECHILD))
			break;
		if (poll(p, 2, p[1].fd < 0 ? TAIL_TICK_MS : -1) < 0)
			continue;
		if (p[0].revents &&
		    !copy_out(rd, file_fd, c->out_cap, &written))
			p[0].fd = -1; /* EOF: the job closed its output */
		while (p[1].fd >= 0 && read(p[1].fd, &si, sizeof(si)) > 0)
			;
	}
	/* The job ended: whatever it left ends with it (as when pid 1
	 * exits), then the rest of the output, then the status. */
	kill(-1, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	fcntl(rd, F_SETFL, 0);
	while (copy_out(rd, file_fd, c->out_cap, &written))
		;
	if (!reported)
		sandbox_status_send(c->status_fd, SANDBOX_EXITED, code, sig,
		                    NULL);
	fdatasync(file_fd);
	fdatasync(c->status_fd);
	_exit(0);
}

/* ---- the runner's side ----------------------------------------------- */

struct sandbox_tail {
	int file_fd; /* sandbox.out, read-only; -1 when there is none */
	int pidfd;   /* pid 1; -1 when it is gone */
	int out_w, done_w;
	int64_t offset; /* bytes of sandbox.out in the out pipe */
	pthread_t thread;
	bool thread_on;
	atomic_bool stop;
};

int sandbox_detached_open(const char *dir, int *out_fd, int *status_fd,
                          struct err *e)
{
	char *out = attempt_path(dir, SANDBOX_OUT);
	char *status = attempt_path(dir, SANDBOX_STATUS);
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC;
	int rc = 0;

	*out_fd = open(out, flags | O_APPEND, 0600);
	*status_fd = open(status, flags, 0600);
	if (*out_fd < 0 || *status_fd < 0) {
		rc = err_sys(e, TERR_IO, "open %s", *out_fd < 0 ? out : status);
		if (*out_fd >= 0)
			close(*out_fd);
		if (*status_fd >= 0)
			close(*status_fd);
		*out_fd = *status_fd = -1;
	}
	free(out);
	free(status);
	return rc;
}

int sandbox_detached_status(const char *dir, struct sandbox_status *st)
{
	char *path = attempt_path(dir, SANDBOX_STATUS);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = -1;

	free(path);
	memset(st, 0, sizeof(*st));
	if (fd >= 0) {
		n = pread(fd, st, sizeof(*st), 0);
		close(fd);
	}
	st->msg[sizeof(st->msg) - 1] = '\0';
	return n == (ssize_t)sizeof(*st) ? 0 : -1;
}

int sandbox_pidfd(pid_t pid, uint64_t start)
{
	int fd;

	if (pid <= 0 || start == 0 || proc_start_time(pid) != start)
		return -1;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* checked again: the pidfd is of the process that had that start */
	if (fd >= 0 && proc_start_time(pid) != start) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Write all of data to the non-blocking pipe; false when told to stop or
 * the reader went away. */
static bool pipe_put(struct sandbox_tail *t, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(t->out_w, data, len);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {t->out_w, POLLOUT, 0};
			if (atomic_load(&t->stop))
				return false;
			poll(&p, 1, TAIL_TICK_MS);
		} else if (!(n < 0 && errno == EINTR)) {
			return false;
		}
	}
	return true;
}

static bool pump(struct sandbox_tail *t)
{
	char chunk[65536];
	ssize_t n;

	while (t->file_fd >= 0 &&
	       (n = pread(t->file_fd, chunk, sizeof(chunk), t->offset)) > 0) {
		if (!pipe_put(t, chunk, (size_t)n))
			return false;
		t->offset += n;
	}
	return true;
}

static void *tail_main(void *arg)
{
	struct sandbox_tail *t = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&t->stop) && pump(t)) {
		struct pollfd p = {t->pidfd, POLLIN, 0};
		if (t->pidfd < 0 ||
		    (poll(&p, 1, TAIL_TICK_MS) > 0 && p.revents)) {
			pump(t); /* pid 1 wrote everything before it exited */
			break;
		}
	}
	close(t->out_w);
	t->out_w = -1;
	if (write(t->done_w, "x", 1) < 0)
		log_warn_errno("sandbox: done pipe");
	return NULL;
}

struct sandbox_tail *sandbox_tail_start(const char *dir, int pidfd,
                                        int64_t offset, int *out_fd,
                                        int *done_fd, struct err *e)
{
	struct sandbox_tail *t = xcalloc(1, sizeof(*t));
	char *path = attempt_path(dir, SANDBOX_OUT);
	int po[2] = {-1, -1}, pd[2] = {-1, -1};

	t->file_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(path);
	t->pidfd = pidfd;
	t->offset = offset;
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pd, O_CLOEXEC) < 0) {
		err_sys(e, TERR_IO, "sandbox: pipe");
		goto fail;
	}
	fcntl(po[1], F_SETFL, O_NONBLOCK);
	t->out_w = po[1];
	t->done_w = pd[1];
	if (pthread_create(&t->thread, NULL, tail_main, t) != 0) {
		err_set(e, TERR_FAIL, "sandbox: cannot start a thread");
		goto fail;
	}
	t->thread_on = true;
	*out_fd = po[0];
	*done_fd = pd[0];
	return t;
fail:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pd[i] >= 0)
			close(pd[i]);
	}
	if (t->file_fd >= 0)
		close(t->file_fd);
	free(t);
	return NULL;
}

void sandbox_tail_stop(struct sandbox_tail *t)
{
	if (t == NULL)
		return;
	atomic_store(&t->stop, true);
	if (t->thread_on)
		pthread_join(t->thread, NULL);
	if (t->done_w >= 0)
		close(t->done_w);
	if (t->file_fd >= 0)
		close(t->file_fd);
	free(t); /* the pidfd is the launcher's */
}

/* ---- where a restarted runner resumes ---------------------------------- */

/* line with every secret replaced by "***", as the masker does. */
static char *mask_line(const struct jobspec *spec, const char *line, size_t len,
                       size_t *out_len)
{
	char *s = xcalloc(1, len + 1);

	memcpy(s, line, len);
	*out_len = len;
	if (memchr(line, '\0', len) != NULL)
		return s; /* binary: compared raw */
	for (size_t i = 0; spec != NULL && i < spec->nsecrets; i++) {
		const char *v = spec->secrets[i].value, *hit;
		size_t vl = v != NULL ? strlen(v) : 0;
		while (vl > 0 && (hit = strstr(s, v)) != NULL) {
			char *n =
			    xasprintf("%.*s***%s", (int)(hit - s), s, hit + vl);
			free(s);
			s = n;
		}
	}
	*out_len = strlen(s);
	return s;
}

/* Length of a runner line ("[spark] ...\n", "[tether] ...\n") at p, or 0:
 * such lines sit between the job's bytes in the log. */
static size_t runner_line(const char *p, size_t left)
{
	size_t i = 1;
	const char *nl;

	if (left < 4 || p[0] != '[')
		return 0;
	while (i < left && i < 16 && p[i] >= 'a' && p[i] <= 'z')
		i++;
	if (i == 1 || i + 1 >= left || p[i] != ']' || p[i + 1] != ' ' ||
	    (nl = memchr(p, '\n', left)) == NULL)
		return 0;
	return (size_t)(nl - p) + 1;
}

int64_t sandbox_resume_offset(struct runner *r, int64_t log_start)
{
	char *path = attempt_path(r->dir, ATTEMPT_LOG);
	char *opath = attempt_path(r->dir, SANDBOX_OUT);
	int lfd = open(path, O_RDONLY | O_CLOEXEC);
	int ofd = open(opath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat ls, os;
	const char *log = MAP_FAILED, *out = MAP_FAILED;
	size_t lp, op = 0;
	int64_t offset = 0;

	free(path);
	free(opath);
	if (lfd < 0 || ofd < 0 || fstat(lfd, &ls) < 0 || fstat(ofd, &os) < 0 ||
	    os.st_size == 0 || log_start < 0 || ls.st_size <= log_start)
		goto out;
	log = mmap(NULL, (size_t)ls.st_size, PROT_READ, MAP_PRIVATE, lfd, 0);
	out = mmap(NULL, (size_t)os.st_size, PROT_READ, MAP_PRIVATE, ofd, 0);
	if (log == MAP_FAILED || out == MAP_FAILED)
		goto out;
	lp = (size_t)log_start;
	/* Line by line through the masking, skipping runner lines: the
	 * offset after the last output byte the log holds. */
	while (op < (size_t)os.st_size) {
		const char *nl =
		    memchr(out + op, '\n', (size_t)os.st_size - op);
		size_t len =
		    nl ? (size_t)(nl - out - op) + 1 : (size_t)os.st_size - op;
		size_t mlen, k = 0;
		char *m = mask_line(r->spec, out + op, len, &mlen);
		bool plain = mlen == len && memcmp(m, out + op, len) == 0;
		while (k < mlen && lp < (size_t)ls.st_size) {
			size_t left = (size_t)ls.st_size - lp;
			size_t aux = runner_line(log + lp, left);
			if (aux > 0 && !(mlen - k >= aux &&
			                 memcmp(m + k, log + lp, aux) == 0))
				lp += aux; /* a runner line, not the job's */
			else if (log[lp] == m[k])
				lp++, k++;
			else
				break;
		}
		free(m);
		if (k < mlen) {
			if (plain)
				offset += (int64_t)k;
			break;
		}
		offset += (int64_t)len;
		op += len;
	}
out:
	if (log != MAP_FAILED)
		munmap((void *)log, (size_t)ls.st_size);
	if (out != MAP_FAILED)
		munmap((void *)out, (size_t)os.st_size);
	if (lfd >= 0)
		close(lfd);
	if (ofd >= 0)
		close(ofd);
	return offset;
}
