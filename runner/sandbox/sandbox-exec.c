/* sandbox-exec.c: the job process, forked by the sandbox's pid 1: its own
 * session, stdin /dev/null, stdout and stderr the log pipe, the job user,
 * no capabilities (bounding set included), no_new_privs, only fds 0-2,
 * the clean environment, then exec. */
#include "runner/metrics/tb-reader.h"
#include "runner/sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static void fail(int fd, int kind, const char *what)
{
	sandbox_status_send(fd, kind, 0, 0, "%s: %s", what, strerror(errno));
	_exit(127);
}

static int setup_fds(const struct sandbox_cfg *c)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0 || dup2(null, 0) < 0 || dup2(c->out_fd, 1) < 0 ||
	    dup2(c->out_fd, 2) < 0)
		return -1;
	return 0;
}

/* Empty the bounding and ambient sets while still privileged. */
static int drop_bounding(void)
{
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last cap */
			return -1;
		}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	return 0;
}

/* Clear permitted, effective and inheritable sets explicitly. */
static int clear_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	return (int)syscall(SYS_capset, &h, d);
}

static int become_user(const struct sandbox_cfg *c)
{
	if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0)
		return -1;
	if (getuid() != c->uid || geteuid() != c->uid ||
	    setuid(0) == 0) /* must not be able to return */
		return errno = EPERM, -1;
	return 0;
}

void sandbox_exec_tb_reader(const struct sandbox_cfg *c)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
	    dup2(null, 2) < 0 || drop_bounding() < 0 || become_user(c) < 0 ||
	    clear_caps() < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(127);
	umask(022);
	tb_reader_main(c->tb_dir, c->tb_fd);
}

void sandbox_exec_job(const struct sandbox_cfg *c, int err_fd)
{
	struct rlimit core = {0, 0};

	setsid();
	if (setup_fds(c) < 0)
		fail(err_fd, SANDBOX_SETUP_FAILED, "stdio");
	if (chdir(c->cwd) < 0)
		fail(err_fd, SANDBOX_SETUP_FAILED, c->cwd);
	if (drop_bounding() < 0)
		fail(err_fd, SANDBOX_SETUP_FAILED,
		     "drop capability bounding set");
	if (become_user(c) < 0)
		fail(err_fd, SANDBOX_SETUP_FAILED, "switch to the job user");
	if (clear_caps() < 0)
		fail(err_fd, SANDBOX_SETUP_FAILED, "clear capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(err_fd, SANDBOX_SETUP_FAILED, "no_new_privs");
	setrlimit(RLIMIT_CORE, &core);
	umask(022);
	/* Every fd but 0-2 (and err_fd until exec) closes at exec. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		fail(err_fd, SANDBOX_SETUP_FAILED, "close_range");
	environ = c->envp;
	execvp(c->argv[0], c->argv);
	sandbox_status_send(err_fd, SANDBOX_EXEC_FAILED, 127, 0,
	                    "exec '%s': %s", c->argv[0], strerror(errno));
	_exit(127);
}
