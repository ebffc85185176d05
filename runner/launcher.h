/* launcher.h: how a job is started and stopped (sandbox, docker, slurm).
 *
 * The supervisor's poll loop needs two fds from a launcher: out_fd yields
 * the job's output bytes (stdout+stderr, in arrival order, already decoded)
 * until EOF, and done_fd becomes readable when the job has ended.  A launcher
 * whose job is not a local child (docker, slurm) may use a thread to feed a
 * pipe.  After done_fd fires and out_fd hit EOF, collect() gives the exit. */
#ifndef TETHER_LAUNCHER_H
#define TETHER_LAUNCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jobspec.h"

struct err;
struct runner;

struct launch_exit {
	int exit_code;      /* -1 when killed by a signal */
	int signal;         /* 0 when it exited */
	bool oom;           /* killed by the memory limit */
	const char *reason; /* launcher-specific override (e.g. "timed_out"
	                       from Slurm's TIMEOUT), or NULL */
	int64_t peak_memory_bytes; /* -1 unknown */
	double cpu_seconds;        /* -1 unknown */
};

struct launcher_ops {
	const char *name;
	/* Check limits and mounts, create the cgroup / image / script.
	 * Refusals here end the attempt as launch_failed before any job code
	 * runs. */
	int (*prepare)(struct runner *r, struct err *e);
	/* Start the job; set r->state.job_pid / launcher_ref as known. */
	int (*start)(struct runner *r, int *out_fd, int *done_fd,
	             struct err *e);
	/* Send sig to the whole job (every process, however detached). */
	int (*signal)(struct runner *r, int sig, struct err *e);
	/* SIGKILL everything left (the cgroup, the container, scancel). */
	int (*kill)(struct runner *r, struct err *e);
	/* After done_fd: exit status and usage. */
	int (*collect)(struct runner *r, struct launch_exit *ex, struct err *e);
	/* Re-attach to a job started by an earlier runner of this attempt
	 * (found by r->state.launcher_ref); TERR_UNSUPP when impossible. */
	int (*reattach)(struct runner *r, int *out_fd, int *done_fd,
	                struct err *e);
	/* Release everything (cgroup, container, files); idempotent. */
	void (*cleanup)(struct runner *r);
	/* Optional: true while the job waits in the launcher's own queue
	 * (Slurm PENDING), with why in reason; the supervisor reports
	 * changes as `pending` events. */
	bool (*pending)(struct runner *r, char *reason, size_t size);
};

extern const struct launcher_ops launcher_sandbox;
extern const struct launcher_ops launcher_docker;
extern const struct launcher_ops launcher_slurm;
extern const struct launcher_ops launcher_spark;

/* The ops for a launcher kind (never LAUNCHER_DEFAULT). */
const struct launcher_ops *launcher_for(enum launcher_kind k);

#endif
