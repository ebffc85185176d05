/* runner.h: one attempt of one job, as the runner sees it.
 *
 * The supervisor (supervisor.c) fills this from spec.json, then runs the
 * phases: source (source.h) -> environment (env.h) -> run (launcher.h) ->
 * outputs.  Launchers and builders read it and keep their own data in
 * launcher_data / env results. */
#ifndef TETHER_RUNNER_H
#define TETHER_RUNNER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/attempt.h"
#include "common/jobspec.h"

struct err;
struct launcher_ops;
struct logpipe;
struct mask;

struct env_result {
	char *prefix;        /* venv/conda prefix on the host, or NULL */
	char **path_prepend; /* NULL-terminated dirs put first on PATH */
	char **vars;         /* NULL-terminated "NAME=value" added to the env */
	char *image;         /* docker image to run in (docker env), or NULL */
	char key[65];        /* cache key (sha256 hex), "" for none */
	bool cache_hit;
};

struct runner {
	char *dir;    /* attempt directory (absolute) */
	char *job_id; /* "42" or "L7" */
	int64_t attempt;
	struct jobspec *spec;
	/* The "runner" object of spec.json (docs/state-dir.md): the settings
	 * the agent chose; the runner's code reads them from here. */
	struct attempt_settings set;
	enum launcher_kind launcher; /* set.launcher as a kind */
	int64_t disk_limit; /* bytes the job may use (disk.c); 0: none */
	uid_t uid;
	gid_t gid;

	/* Host paths of the job's directories inside the attempt dir. */
	char *work_dir, *outputs_dir, *checkpoints_dir;
	/* Where the job writes instead, outside the attempt dir (the slurm
	 * launcher's staging dir; not owned), or NULL; disk.c measures it. */
	const char *stage_dir;

	/* The job's argv and environment (NULL-terminated), built by the
	 * supervisor after the environment phase. */
	char **argv;
	char **envp;
	struct env_result env;
	char *commit; /* resolved git commit, or NULL */

	int log_fd; /* the attempt's log, O_APPEND */
	struct attempt_state state;
	const struct launcher_ops *ops;
	void *launcher_data;

	/* Supervisor internals (supervisor*.c); launchers leave them alone. */
	int events_fd; /* O_APPEND events file */
	/* The run loop's inotify fd once its watch is removed (or -1): closed
	 * last, by runner_close_files(), since closing an inotify fd waits for
	 * the kernel to reap the removed watch (an SRCU grace period, ≈ 10 ms);
	 * the final writes overlap with that wait instead. */
	int idle_watch_fd;
	int64_t next_seq;        /* seq of the next event */
	struct mask *job_mask;   /* masker of the job's output stream */
	struct mask *aux_mask;   /* masker of [tether]/[env]/... lines */
	struct logpipe *job_log; /* job output -> log */
	struct logpipe *aux_log; /* runner_logf / runner_log_bytes -> log */
	int64_t run_started_ms;  /* CLOCK_MONOTONIC at job start */
	/* CLOCK_MONOTONIC at the attempt's start (its first event, whichever
	 * runner wrote it; a look-ahead build's own start): the job's timeout
	 * counts from it, through the source, env and run phases. */
	int64_t attempt_started_ms;
	/* A second stream of TETHER_METRIC lines a launcher started (the
	 * sandbox's TensorBoard reader), read by the run loop; <= 0: none. */
	int metrics_fd;
	bool reattach;  /* an earlier runner started the job */
	bool lookahead; /* `envs build`: a build ahead of the job */
	bool resumed;   /* checkpoint.tar.gz restored */
	/* A multi-node rank or processes_per_node > 1 (rendezvous.c,
	 * docs/multi-node.md): the rendezvous variables ("NAME=value",
	 * NULL-terminated; NULL: none), put last into envp; the processes
	 * the launcher starts (0 or 1: one) and the RANK of the first. */
	char **rdv_vars;
	int procs, rank_base;
	bool has_progress; /* a TETHER_PROGRESS line was seen */
	double progress;   /* its last value */
};

/* Write a "[prefix] message\n" line into the job's log (unmasked text is
 * passed through the secret masker like job output). */
void runner_logf(struct runner *r, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write bytes produced by a builder or launcher into the job log through
 * the secret masker. */
void runner_log_bytes(struct runner *r, const char *data, size_t len);
/* The GPU indices the agent assigned (runner setting `gpus`), in order,
 * at most max of them into out; returns how many (gpus.c). */
size_t runner_gpus(const struct runner *r, int *out, size_t max);
/* Call fn on path and everything below it (pre-order, lstat: symlinks not
 * followed) down to max_depth levels; -1 when a directory in it could not
 * be read, was too deep or vanished, else 0 (chown-tree.c). */
struct stat;
int runner_tree_walk(const char *path, int max_depth,
                     void (*fn)(const char *path, const struct stat *st,
                                void *arg),
                     void *arg);
/* Hand path and everything below it (symlinks not followed) to uid:gid,
 * going on past failures; returns the first (chown-tree.c). */
int runner_chown_tree(const char *path, uid_t uid, gid_t gid, struct err *e);
/* Free a NULL-terminated vector of heap strings and the vector (strv.c);
 * _freezero zeroes each string first (an environment with secrets). */
void runner_strv_free(char **v);
void runner_strv_freezero(char **v);
/* disk.c: the attempt's disk budget, resources.disk or the agent's
 * attempt_max_disk; TERR_INVAL naming resources.disk when the job asks
 * for more than the agent allows. */
int runner_disk_budget(struct runner *r, struct err *e);
/* disk.c: bytes the job uses now: its work, outputs and checkpoints
 * directories (walked without following symlinks), its private /tmp and
 * /dev/shm (sandbox), and files it deleted but keeps open. */
int64_t runner_disk_usage(struct runner *r);
/* The attempt's files (runner-io.c): open the log and events files, append
 * a phase's start/end event, record the phase in state.json, close. */
int runner_open_files(struct runner *r, struct err *e);
int runner_phase_event(struct runner *r, const char *phase, const char *state,
                       double duration, struct err *e);
void runner_set_phase(struct runner *r, const char *phase);
void runner_close_files(struct runner *r);
/* The attempt's timeout deadline (CLOCK_MONOTONIC), -1 without a timeout:
 * attempt_started_ms + the spec's timeout (docs/jobspec.md). */
int64_t runner_timeout_deadline(const struct runner *r);
/* r->attempt_started_ms from the attempt's first event's wall-clock time
 * (an earlier runner of the same attempt wrote it; runner_open_files()
 * reads it), else now: first_event 0 (none) or in the future. */
void runner_attempt_start(struct runner *r, double first_event);
/* The attempt as spec.json gave it (runner-spec.c): the launcher and the
 * job's directories from r->set (after attempt_settings_parse into it);
 * TERR_UNSUPP for a launcher this runner was built without. */
int runner_settings_load(struct runner *r, struct err *e);
/* The start barrier and rendezvous of a multi-node rank, or the local
 * rendezvous of processes_per_node > 1 (rendezvous.c): fills rdv_vars,
 * procs, rank_base; *stop a fence reason when stopped while waiting. */
int runner_rendezvous(struct runner *r, const char **stop, struct err *e);
/* Fill r->argv and r->envp (clean environment, see docs/sandbox.md). */
int runner_build_job(struct runner *r, struct err *e);
/* Free what r holds and zero it. */
void runner_free(struct runner *r);
/* Persist r->state to state.json durably (fsync of the file and the
 * directory): the record of a started job (pid, cgroup, launcher_ref) that
 * a later runner relies on to re-attach instead of starting it twice;
 * atomically only for a sandboxed job, which dies with its machine. */
int runner_save_state(struct runner *r, struct err *e);
/* Whether a state.json write of r must be durable: while it carries the
 * record of a started job, since an atomic but not durable replacement
 * could leave the older content, without the record, after a power loss;
 * not before the job starts (a power loss kills what it would describe)
 * nor at "done" (result.json, written durably first, then decides).
 * runner_set_phase() follows this; docs/recovery.md, "Durability". */
bool runner_state_durable(const struct runner *r);
/* Append a status event (seq assigned here) to the events file. */
int runner_event(struct runner *r, json_t *event, struct err *e);

#endif
