/* launcher-docker.h: the docker launcher's per-attempt state, shared by
 * launcher-docker.c (the ops) and dlaunch.c (the container's life:
 * following its output, waiting, signalling, removing). */
#ifndef TETHER_LAUNCHER_DOCKER_H
#define TETHER_LAUNCHER_DOCKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runner/docker/docker.h"

struct launch_exit;

/* Attempt file of the docker launcher: {"container", "log_start"}. */
#define DOCKER_STATE_FILE "docker.json"

struct dlaunch {
	struct docker *d;
	char id[128];      /* container id */
	int out_w, done_w; /* write ends fed by the follower thread */
	pthread_t th;
	bool th_started;
	volatile int stop; /* set to end the follower early */
	int64_t skip;      /* raw bytes this runner already delivered */
	int64_t seen;      /* raw bytes of the stream seen so far */
	int cmp_fd;        /* the log, while matching an earlier runner's */
	int64_t cmp_base;  /* log offset where the job's output began */
	char cmp_buf[65536];
	/* usage sampled from the container's cgroup while it runs */
	char *mem_dir, *cpu_dir;
	int64_t peak_bytes, last_sample_ms;
	double cpu_seconds;
	struct docker_demux dm;
	bool removed;
};

/* A container named `name` exists: adopt it if it ever started (never
 * two containers per attempt), else remove it so it can be recreated. */
int dlaunch_adopt(struct dlaunch *dl, const char *name, bool *adopted,
                  struct err *e);
/* Check the recorded container exists (TERR_NOTFOUND when gone). */
int dlaunch_check(struct dlaunch *dl, struct err *e);
/* Host pid of the container's init (0 when not running). */
pid_t dlaunch_pid(struct dlaunch *dl);
/* Start the follower thread: the container's output goes to *out_fd, and
 * *done_fd becomes readable once the container exited.  With log_fd >= 0
 * (re-attach; the fd is taken over), the stream's leading bytes that equal
 * the log from offset log_start on are what an earlier runner already
 * wrote there, and are dropped: the log continues without loss or
 * duplication. */
int dlaunch_follow(struct dlaunch *dl, int log_fd, int64_t log_start,
                   int *out_fd, int *done_fd, struct err *e);
/* Signal every process of the container. */
int dlaunch_signal(struct dlaunch *dl, int sig, struct err *e);
void dlaunch_join(struct dlaunch *dl);
/* Exit code, signal and OOM of the exited container. */
int dlaunch_exit(struct dlaunch *dl, struct launch_exit *ex, struct err *e);
/* Remove the container (force); idempotent, errors logged. */
void dlaunch_remove(struct dlaunch *dl);

/* docker-cgroup.c */
/* The container's cgroup directory for a v1 controller, else its v2 one;
 * NULL unless the path names the container id. */
char *docker_cgroup_dir(pid_t init, const char *id, const char *ctrl);
/* Signal every process in the container's cgroup but its init (the
 * engine's docker-init); returns how many were signalled. */
int docker_cgroup_signal(pid_t init, const char *id, int sig);
/* Sample peak memory and CPU time into dl (rate-limited; arg is dl). */
void dlaunch_sample(void *arg);

#endif
