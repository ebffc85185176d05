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
	/* A sandbox that outlives its runner (sandbox-detach.c): out_fd and
	 * status_fd are then sandbox.out and sandbox.status, pid 1 copies the
	 * job's output into the former (at most out_cap bytes; 0: no cap). */
	bool detached;
	int64_t out_cap;
	uid_t uid;
	gid_t gid;
	char **argv, **envp;
	/* processes_per_node (docs/multi-node.md): pid 1 starts procs (>= 1)
	 * copies of the job, copy i with RANK=rank_base+i, LOCAL_RANK=i. */
	int procs, rank_base;
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

/* sandbox-detach.c: a sandbox that outlives its runner. */
#define SANDBOX_OUT    "sandbox.out"    /* the job's output, in the attempt */
#define SANDBOX_STATUS "sandbox.status" /* one sandbox_status, by pid 1 */
struct runner;
struct sandbox_tail;
/* pid 1: copy the job's output pipe rd into file_fd until the job exited,
 * then end the rest, drain, write the status; never returns. */
void sandbox_detached_follow(struct sandbox_cfg *c, pid_t job, int rd,
                             int file_fd, bool reported)
    __attribute__((noreturn));
/* Create (empty) sandbox.out and sandbox.status for pid 1. */
int sandbox_detached_open(const char *dir, int *out_fd, int *status_fd,
                          struct err *e);
/* The record pid 1 wrote; -1 when there is none (it was killed). */
int sandbox_detached_status(const char *dir, struct sandbox_status *st);
/* A pidfd of pid when it still has that start time, else -1. */
int sandbox_pidfd(pid_t pid, uint64_t start);
/* A thread copies sandbox.out from offset into *out_fd until pidfd (-1:
 * gone) shows pid 1 exited; then *done_fd becomes readable. */
struct sandbox_tail *sandbox_tail_start(const char *dir, int pidfd,
                                        int64_t offset, int *out_fd,
                                        int *done_fd, struct err *e);
void sandbox_tail_stop(struct sandbox_tail *t);
/* The spark launcher's driver: make the prepared sandbox (r->launcher_data)
 * outlive its runner. */
void sandbox_set_detached(struct runner *r);
/* A read-only bind of a directory the runner made (source) at target in
 * the prepared sandbox (r->launcher_data); target is borrowed. */
void sandbox_add_mount(struct runner *r, const char *source,
                       const char *target);
/* A restarted runner: follow the detached sandbox state.json recorded. */
int sandbox_adopt(struct runner *r, int *out_fd, int *done_fd, struct err *e);
/* Bytes of sandbox.out the log already holds from log_start on (through
 * the masking, runner lines skipped): where a restarted runner resumes. */
int64_t sandbox_resume_offset(struct runner *r, int64_t log_start);

#endif
