/* sandbox.h: internals of the `sandbox` launcher (docs/sandbox.md).
 *
 * sandbox.c      the launcher ops: prepare (mount allowlist, cgroup),
 *                start (clone into new namespaces), signal, kill, collect
 * sandbox-init.c pid 1 of the job's pid namespace: a tiny reaper that
 *                builds the root, starts the job and reports its status
 * sandbox-mount.c the job's root: read-only binds, private /tmp, /tether
 * sandbox-exec.c the job process: user, capabilities, fds, exec */
#ifndef TETHER_SANDBOX_H
#define TETHER_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;

struct sandbox_mount {
	char *source; /* resolved host path */
	const char *target;
	bool readonly;
};

/* Everything the child side needs; filled by the runner before clone and
 * read (copy-on-write) in the new namespaces. */
struct sandbox_cfg {
	char *root; /* mount point of the new root (empty directory) */
	const char *work, *outputs, *checkpoints; /* host directories */
	const char *state_dir;                    /* hidden in the sandbox */
	/* The job's environment, visible at its path wherever it lies (the
	 * hidden state dir, the private /tmp): env_src (NULL: env_prefix) is
	 * bound there, read-only unless env_rw (an environment build). */
	const char *env_prefix, *env_src;
	bool env_rw;
	int64_t tmp_size; /* size of /tmp and /dev/shm (0: default) */
	struct sandbox_mount *mounts;
	size_t nmounts;
	char *cwd; /* /tether/work[/workdir] */
	char hostname[64];
	bool net_none;
	uid_t uid;
	gid_t gid;
	char **argv, **envp;
	/* The child ends of the pipes.  ready_fd (close-on-exec) closes when
	 * the job process exec'd or died: until the job is forked, a signal
	 * would reach only pid 1, which drops it. */
	int out_fd, status_fd, sync_fd, ready_fd;
	/* metrics.tensorboard: the directory in the sandbox and the write
	 * end of the pipe its reader's lines go to (tb_fd -1: none). */
	char *tb_dir;
	int tb_fd;
};

enum sandbox_status_kind {
	SANDBOX_EXITED = 1,       /* code / sig set */
	SANDBOX_SETUP_FAILED = 2, /* msg: launch_failed */
	SANDBOX_EXEC_FAILED = 3,  /* msg: exec error; exit code 127 */
};

/* One record on the status pipe (smaller than PIPE_BUF: atomic). */
struct sandbox_status {
	int32_t kind;
	int32_t code;
	int32_t sig;
	char msg[500];
};

/* pid 1 of the sandbox; never returns. */
void sandbox_init_main(struct sandbox_cfg *c) __attribute__((noreturn));
/* Build the root and pivot into it (in the new mount namespace). */
int sandbox_mount_root(const struct sandbox_cfg *c, char *msg, size_t size);
/* Become the job (after fork in pid 1); never returns.  Failures are
 * reported as a status record on err_fd. */
void sandbox_exec_job(const struct sandbox_cfg *c, int err_fd)
    __attribute__((noreturn));
/* Become the TensorBoard reader (after fork in pid 1): the job user with
 * the job's restrictions, then tb_reader_main(); never returns. */
void sandbox_exec_tb_reader(const struct sandbox_cfg *c)
    __attribute__((noreturn));
/* Write a status record (best effort). */
void sandbox_status_send(int fd, int kind, int code, int sig, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));

#endif
