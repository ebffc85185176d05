/* cgroup.h: one cgroup per attempt under a parent (default "tether"),
 * created and joined through libcgroup, with memory, CPU quota, pids and
 * device limits; usage, OOM and whole-group kill for the launcher.
 *
 * cgroup v1 (one hierarchy per controller) and v2 (one unified tree) sit
 * behind struct cgroup_ops (cgroup-v1.c, cgroup-v2.c); cgroup.c detects
 * which one the node runs and holds what both share. */
#ifndef TETHER_CGROUP_H
#define TETHER_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;
struct job_cgroup;

struct cgroup_limits {
	int64_t memory;  /* bytes; 0: none */
	double cpus;     /* 0: no quota */
	int64_t pids;    /* 0: none */
	const int *gpus; /* assigned GPU indices (device minors) */
	size_t ngpus;
};

struct cgroup_usage {
	int64_t peak_memory_bytes; /* -1 unknown */
	double cpu_seconds;        /* -1 unknown */
	bool oom;                  /* the memory limit killed a process */
};

/* Create <parent>/<name> with the limits (an existing one of that name,
 * left by a crashed runner, is emptied and reused). */
int cgroup_job_create(const char *parent, const char *name,
                      const struct cgroup_limits *lim, struct job_cgroup **out,
                      struct err *e);
/* The existing group <parent>/<name> as it is (a restarted runner adopts
 * a detached sandbox's); TERR_NOTFOUND when it is gone. */
int cgroup_job_open(const char *parent, const char *name,
                    struct job_cgroup **out, struct err *e);
/* Move pid into the group. */
int cgroup_job_attach(struct job_cgroup *cg, pid_t pid, struct err *e);
/* fork() into new namespaces (ns_flags: CLONE_NEW*), the child inside the
 * group from its first instruction where the kernel allows (v2: clone3's
 * CLONE_INTO_CGROUP; *born true), else in the caller's group (*born false:
 * the caller moves it with cgroup_job_attach).  Returns 0 in the child,
 * the pid in the caller, -1 with errno on failure.  Being born there
 * spares the move, which waits for an RCU grace period (4-20 ms on a
 * machine that was idle: docs/performance.md, F10). */
pid_t cgroup_job_clone(struct job_cgroup *cg, unsigned long ns_flags,
                       bool *born);
/* Send sig to every process in the group. */
int cgroup_job_signal(struct job_cgroup *cg, int sig, struct err *e);
/* Kill every process (freeze, SIGKILL, thaw; until empty or timeout). */
int cgroup_job_kill(struct job_cgroup *cg, int timeout_ms, struct err *e);
/* Number of processes in the group (-1 on error). */
int cgroup_job_count(struct job_cgroup *cg);
void cgroup_job_usage(struct job_cgroup *cg, struct cgroup_usage *u);
/* "tether/42_1": the path relative to the controller roots. */
const char *cgroup_job_path(const struct job_cgroup *cg);
/* 1 or 2. */
int cgroup_job_version(const struct job_cgroup *cg);
/* Kill what is left and remove the group; frees cg.  Accepts NULL. */
void cgroup_job_destroy(struct job_cgroup *cg);

/* Internal: the per-version operations. */
struct cgroup_ops {
	int version;
	/* Controller directories of the group, NULL-terminated list of
	 * controller names to add through libcgroup. */
	const char *const *controllers;
	int (*limit)(struct job_cgroup *cg, const struct cgroup_limits *l,
	             struct err *e);
	int (*freeze)(struct job_cgroup *cg, bool frozen, struct err *e);
	/* SIGKILL every process at once (v2 cgroup.kill); NULL or an error:
	 * the freeze, kill, thaw loop. */
	int (*kill)(struct job_cgroup *cg, struct err *e);
	void (*usage)(struct job_cgroup *cg, struct cgroup_usage *u);
	/* A directory of the group whose cgroup.procs lists every process. */
	const char *procs_controller;
};

struct job_cgroup {
	const struct cgroup_ops *ops;
	char path[256];
	char v2_root[128];  /* v2: the unified mount ("/sys/fs/cgroup") */
	struct cgroup *lib; /* libcgroup handle */
	/* cgroup_job_create() made the group (no leftover of a crash): its
	 * files hold the kernel's defaults, which limit() need not write. */
	bool fresh;
};

extern const struct cgroup_ops cgroup_v1_ops;
extern const struct cgroup_ops cgroup_v2_ops;

/* Directory of the group in one controller's hierarchy (heap), or NULL.
 * For v2, controller is ignored. */
char *cgroup_job_dir(struct job_cgroup *cg, const char *controller);
/* Write a value to a file of the group in a controller. */
int cgroup_job_write(struct job_cgroup *cg, const char *controller,
                     const char *file, const char *value, struct err *e);
/* Read a file of the group into buf (NUL-terminated); 0 or TERR_*. */
int cgroup_job_read(struct job_cgroup *cg, const char *controller,
                    const char *file, char *buf, size_t size);
/* Read a single integer file ("max" reads as -1). */
int64_t cgroup_job_read_i64(struct job_cgroup *cg, const char *controller,
                            const char *file);
/* Find "key N" in a flat keyed file (memory.events, cpu.stat, ...). */
int64_t cgroup_job_read_key(struct job_cgroup *cg, const char *controller,
                            const char *file, const char *key);

/* Major number of a character device driver in /proc/devices, or -1. */
int cgroup_char_major(const char *driver);
/* v2: attach the device allow-list program to the group (cgroup-bpf.c). */
int cgroup_v2_devices(struct job_cgroup *cg, const struct cgroup_limits *l,
                      struct err *e);

#endif
