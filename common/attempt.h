/* attempt.h: the files of one attempt directory, shared by agent and runner.
 * The formats are documented in docs/state-dir.md. */
#ifndef TETHER_ATTEMPT_H
#define TETHER_ATTEMPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct err;

#define ATTEMPT_SPEC       "spec.json"
#define ATTEMPT_STATE      "state.json"
#define ATTEMPT_EVENTS     "events"
#define ATTEMPT_LOG        "log"
#define ATTEMPT_RESULT     "result.json"
#define ATTEMPT_LEASE      "lease"
#define ATTEMPT_CANCEL     "cancel"
#define ATTEMPT_SNAPSHOT   "snapshot.tar.gz"
#define ATTEMPT_CHECKPOINT "checkpoint.tar.gz"

struct attempt_state {
	pid_t runner_pid;
	uint64_t runner_start; /* /proc/<pid>/stat field 22 */
	pid_t job_pid;
	char phase[16];         /* source, env, run, outputs, done */
	char launcher[16];      /* sandbox, docker, slurm */
	char launcher_ref[128]; /* container id, Slurm job id */
	char cgroup[256]; /* cgroup path relative to the controller root */
};

/* "<dir>/<file>" on the heap. */
char *attempt_path(const char *dir, const char *file);

int attempt_lease_write(const char *dir, int64_t deadline_mono_ms,
                        int64_t deadline_wall_ms, struct err *e);
/* TERR_NOTFOUND when there is no lease file (no lease). */
int attempt_lease_read(const char *dir, int64_t *deadline_mono_ms,
                       struct err *e);

/* reason: cancelled, timed_out, preempted, lost. */
int attempt_cancel_write(const char *dir, const char *reason, int64_t grace_ms,
                         struct err *e);
/* TERR_NOTFOUND when not cancelled.  reason has room for 32 bytes. */
int attempt_cancel_read(const char *dir, char reason[32], int64_t *grace_ms,
                        struct err *e);

int attempt_state_write(const char *dir, const struct attempt_state *st,
                        struct err *e);
int attempt_state_read(const char *dir, struct attempt_state *st,
                       struct err *e);

/* Append one event as a JSON line to an O_APPEND fd (one write call). */
int attempt_event_append(int fd, json_t *event, struct err *e);

/* Start time of a process (field 22 of /proc/<pid>/stat); 0 if gone. */
uint64_t proc_start_time(pid_t pid);
/* True when the runner recorded in st still runs (pid and start time). */
bool attempt_runner_alive(const struct attempt_state *st);

#endif
