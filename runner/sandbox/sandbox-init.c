/* sandbox-init.c: pid 1 of the job's pid namespace.  It builds the job's
 * root, waits for the runner to put it in the cgroup, starts the job
 * and reaps every orphan until the job itself exits; then it reports the
 * job's status on the status pipe and exits, which makes the kernel kill
 * whatever is left in the namespace. */
#include "runner/sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TB_READER_WAIT_MS 2000

void sandbox_status_send(int fd, int kind, int code, int sig, const char *fmt,
                         ...)
{
	struct sandbox_status st;
	va_list ap;
	ssize_t n;

	memset(&st, 0, sizeof(st));
	st.kind = kind;
	st.code = code;
	st.sig = sig;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(st.msg, sizeof(st.msg), fmt, ap);
		va_end(ap);
	}
	do
		n = write(fd, &st, sizeof(st));
	while (n < 0 && errno == EINTR);
}

/* Default dispositions and an empty mask (the runner blocks signals for
 * its signalfd and ignores SIGPIPE; the job must not inherit that). */
/* pid 1 never execs, so close-on-exec does not apply to it: close every
 * fd of the runner's but the pipes, or pid 1 would hold the runner's (the
 * attempt lock on spec.json, the log) after the runner died, and a new
 * runner on the attempt would find it locked. */
static void close_runner_fds(const struct sandbox_cfg *c)
{
	int keep[] = {c->out_fd, c->status_fd, c->sync_fd, c->ready_fd,
	              c->tb_fd};
	const int n = (int)(sizeof(keep) / sizeof(keep[0]));
	unsigned int lo = 3;

	for (int i = 1; i < n; i++) /* ascending */
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (int i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned int)keep[i] > lo)
			close_range(lo, (unsigned int)keep[i] - 1, 0);
		lo = (unsigned int)keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

static void reset_signals(void)
{
	sigset_t none;

	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* `network: none`: the new net namespace has only lo; bring it up. */
static void loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
}

static void setup_failed(struct sandbox_cfg *c, const char *msg)
{
	sandbox_status_send(c->status_fd, SANDBOX_SETUP_FAILED, 0, 0, "%s",
	                    msg);
	_exit(1);
}

/* Read the job's pre-exec error, if any (EOF: exec succeeded). */
static bool forward_exec_error(struct sandbox_cfg *c, int fd)
{
	struct sandbox_status st;
	ssize_t n;

	do
		n = read(fd, &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(st))
		return false;
	if (write(c->status_fd, &st, sizeof(st)) < 0)
		return true;
	return true;
}

/* The job ended: the TensorBoard reader gets SIGTERM for a last look at
 * the files and TB_READER_WAIT_MS to write it, then SIGKILL (orphans are
 * reaped meanwhile). */
static void stop_tb_reader(pid_t reader)
{
	struct timespec ts = {0, 10 * 1000000L};
	int st;

	kill(reader, SIGTERM);
	for (int i = 0; i < TB_READER_WAIT_MS / 10; i++) {
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p == reader || (p < 0 && errno == ECHILD))
			return;
		if (p == 0)
			nanosleep(&ts, NULL);
	}
	kill(reader, SIGKILL);
}

/* processes_per_node (docs/multi-node.md): copy i of the job gets
 * RANK=rank_base+i and LOCAL_RANK=i in place of the runner's values (in
 * the forked child, before its exec). */
static void set_local_rank(struct sandbox_cfg *c, int i)
{
	char rank[32], local[32];

	snprintf(rank, sizeof(rank), "RANK=%d", c->rank_base + i);
	snprintf(local, sizeof(local), "LOCAL_RANK=%d", i);
	for (size_t k = 0; c->envp[k] != NULL; k++) {
		if (strncmp(c->envp[k], "RANK=", 5) == 0)
			c->envp[k] = strdup(rank);
		else if (strncmp(c->envp[k], "LOCAL_RANK=", 11) == 0)
			c->envp[k] = strdup(local);
	}
}

/* Wait for the job's n processes (n > 1: the processes_per_node copies),
 * one fate: the first to end other than exit 0 is the job's status (pid 1
 * exits then, and the kernel kills the other copies with the namespace);
 * exit 0 once every copy exited 0.  Orphans are reaped meanwhile. */
static void reap_copies(struct sandbox_cfg *c, pid_t *jobs, int n, pid_t reader,
                        bool reported)
{
	int st, left = n;
	pid_t p;

	for (;;) {
		p = waitpid(-1, &st, 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			_exit(reported ? 0 : 1);
		if (p == reader)
			reader = 0;
		int i = 0;
		while (i < n && jobs[i] != p)
			i++;
		if (i == n)
			continue; /* an orphan */
		jobs[i] = 0;
		left--;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && left > 0)
			continue;
		if (reader > 0)
			stop_tb_reader(reader);
		if (!reported)
			sandbox_status_send(
			    c->status_fd, SANDBOX_EXITED,
			    WIFEXITED(st) ? WEXITSTATUS(st) : -1,
			    WIFSIGNALED(st) ? WTERMSIG(st) : 0, NULL);
		_exit(0);
	}
}

void sandbox_init_main(struct sandbox_cfg *c)
{
	char msg[400], go;
	int errp[2], outp[2] = {-1, -1}, file_fd = c->out_fd;
	pid_t job, reader = 0;
	bool reported;

	if (!c->detached)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	else
		setsid(); /* nothing of the runner's session reaches it */
	reset_signals();
	close_runner_fds(c);
	/* The root is built while the runner moves this process into the
	 * cgroup (on v1 the first move waits for an RCU grace period, some
	 * ms); nothing forks or execs before the runner says go. */
	if (sethostname(c->hostname, strlen(c->hostname)) < 0)
		setup_failed(c, "sethostname in the new uts namespace");
	if (c->net_none)
		loopback_up();
	if (sandbox_mount_root(c, msg, sizeof(msg)) < 0)
		setup_failed(c, msg);
	if (read(c->sync_fd, &go, 1) != 1)
		_exit(1); /* the runner went away before starting us */
	close(c->sync_fd);
	if (pipe2(errp, O_CLOEXEC) < 0 ||
	    (c->detached && pipe2(outp, O_CLOEXEC) < 0))
		setup_failed(c, "pipe: out of file descriptors");
	if (c->detached)
		c->out_fd = outp[1]; /* the job's; pid 1 copies into the file */
	pid_t *copies =
	    calloc((size_t)(c->procs > 1 ? c->procs : 1), sizeof(pid_t));
	if (copies == NULL)
		setup_failed(c, "out of memory");
	for (int i = 0; i < (c->procs > 1 ? c->procs : 1); i++) {
		copies[i] = fork();
		if (copies[i] < 0)
			setup_failed(c, "fork the job: resource limit");
		if (copies[i] == 0) {
			close(errp[0]);
			if (c->procs > 1)
				set_local_rank(c, i);
			sandbox_exec_job(c, errp[1]);
		}
	}
	job = copies[0];
	close(errp[1]);
	close(c->ready_fd); /* the job's copy closes at its exec */
	close(c->out_fd);   /* the job holds the only writer now */
	if (c->tb_fd >= 0) {
		reader = fork();
		if (reader == 0) {
			close(errp[0]);
			close(c->status_fd);
			if (c->detached) { /* pid 1's files, not the reader's */
				close(outp[0]);
				close(file_fd);
			}
			sandbox_exec_tb_reader(c);
		}
		close(c->tb_fd); /* the reader holds the only writer */
	}
	reported = forward_exec_error(c, errp[0]);
	if (c->detached)
		sandbox_detached_follow(c, job, outp[0], file_fd, reported);
	if (c->procs > 1)
		reap_copies(c, copies, c->procs, reader, reported);
	reap_copies(c, &job, 1, reader, reported);
	_exit(1);
}
