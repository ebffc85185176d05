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
#define ATTEMPT_RENDEZVOUS "rendezvous.json" /* multi-node start barrier */
#define ATTEMPT_SNAPSHOT   "snapshot.tar.gz"
#define ATTEMPT_CHECKPOINT "checkpoint.tar.gz"

/* Most bytes read of each file (one cap per file, both sides). */
#define ATTEMPT_SPEC_MAX    (16 * 1024 * 1024)
#define ATTEMPT_STATE_MAX   65536
#define ATTEMPT_RESULT_MAX  (16 * 1024 * 1024)
#define ATTEMPT_EVENTS_MAX  (64 * 1024 * 1024)
#define ATTEMPT_EVENT_DEPTH 16 /* JSON nesting of one event */

/* Defaults of the runner settings (and of the agent settings they come
 * from, agent/config.c): a runner uses them for keys spec.json lacks. */
#define ATTEMPT_DEF_STATE_DIR     "/var/lib/tether"
#define ATTEMPT_DEF_JOB_USER      "tether-job"
#define ATTEMPT_DEF_CGROUP_PARENT "tether"
#define ATTEMPT_DEF_ENV_DIR       ATTEMPT_DEF_STATE_DIR "/envs"
#define ATTEMPT_DEF_PYTHON        "/usr/bin/python3"
#define ATTEMPT_DEF_DOCKER_SOCKET "/var/run/docker.sock"
#define ATTEMPT_DEF_LAUNCHER      "sandbox"
#define ATTEMPT_DEF_KILL_GRACE_MS 10000
#define ATTEMPT_DEF_PIDS          4096
#define ATTEMPT_DEF_MAX_LOG       ((int64_t)10 << 30)
#define ATTEMPT_DEF_SNAP_ENTRIES  1000000
#define ATTEMPT_DEF_SOURCE_MAX    ((int64_t)2 << 30)
#define ATTEMPT_DEF_DISK_CHECK_MS 1000
#define ATTEMPT_DEF_SLURM_POLL_MS 5000
#define ATTEMPT_DEF_SPARK_POLL_MS 1000

struct attempt_mount {
	char *source;
	bool readonly;
};

/* The "runner" object of spec.json: what the agent chose for the runner
 * from its config (docs/state-dir.md).  Strings are on the heap; NULL
 * where noted. */
struct attempt_settings {
	char *state_dir, *job_user, *cgroup_parent, *env_dir;
	char *default_python, *docker_socket;
	char *conda_tool; /* NULL: the first found */
	char *launcher;   /* sandbox, docker, slurm (resolved) */
	char *agent_id;   /* docker label tether.agent; NULL: none */
	char *known_hosts, *git_ca_file; /* NULL: the system's */
	/* A rank of a multi-node job: the address this node offers the other
	 * ranks (the agent's node_address, docs/multi-node.md); NULL: none */
	char *node_address;
	int64_t kill_grace_ms, default_pids, max_log_bytes;
	int64_t snapshot_max_bytes, snapshot_max_entries, source_max_bytes;
	int64_t env_budget_bytes; /* 0: no limit */
	int64_t attempt_max_disk; /* bytes, 0: none */
	int64_t disk_check_ms;
	bool docker_readonly_rootfs;
	struct attempt_mount *mounts; /* allowed_mounts */
	size_t nmounts;
	int *gpus; /* GPU indices assigned */
	size_t ngpus;
	struct {
		char *partition, *shared_dir, *account, *qos; /* NULL: none */
		int64_t poll_ms;
		bool sstat;
	} slurm;
	struct {
		/* master: the agent's spark_master; ui: its JSON/kill web UI
		 * (NULL: http://<master host>:8080); home: SPARK_HOME (NULL:
		 * spark-submit from PATH); driver_host: spark.driver.host
		 * (NULL: this node's hostname); yarn: the yarn command,
		 * yarn_conf: its HADOOP_CONF_DIR (NULL: inherited).
		 * docs/spark.md */
		char *master, *ui, *home, *driver_host, *yarn, *yarn_conf;
		int64_t poll_ms;
	} spark;
};

/* The defaults, every string set (conda_tool and the optional ones NULL). */
void attempt_settings_init(struct attempt_settings *s);
void attempt_settings_free(struct attempt_settings *s);
/* The settings as spec.json's "runner" object (new reference). */
json_t *attempt_settings_json(const struct attempt_settings *s);
/* Read a "runner" object (NULL: all defaults) into s, defaults for what it
 * lacks; TERR_INVAL naming "runner.<key>" for a malformed value.  s is
 * left initialised (attempt_settings_free it) either way. */
int attempt_settings_parse(json_t *obj, struct attempt_settings *s,
                           struct err *e);

/* spec.json: {"job", "attempt", "spec": {job spec}, "runner": {settings}}.
 * spec is borrowed.  Atomic, not synced: agent.db holds the spec, and the
 * agent writes the file again before restarting a runner when a power
 * loss took it (agent/restart.c; docs/recovery.md, "Durability"). */
int attempt_spec_write(const char *dir, const char *job, int64_t attempt,
                       json_t *spec, const struct attempt_settings *s,
                       struct err *e);
/* The whole document of dir/spec.json (callers pick the members). */
int attempt_spec_read(const char *dir, json_t **out, struct err *e);

/* result.json: written last by the runner (its presence: done).  o is
 * borrowed. */
int attempt_result_write(const char *dir, json_t *o, struct err *e);
/* TERR_NOTFOUND when there is none yet. */
int attempt_result_read(const char *dir, json_t **out, struct err *e);
bool attempt_result_exists(const char *dir);

struct attempt_state {
	pid_t runner_pid;
	uint64_t runner_start; /* /proc/<pid>/stat field 22 */
	pid_t job_pid;
	/* A job that outlives its runner (the spark launcher's detached
	 * sandbox): job_pid's start time (field 22) and the log's size when
	 * the job's output began; 0 otherwise. */
	uint64_t job_start;
	int64_t log_start;
	char phase[16];         /* source, env, run, outputs, done */
	char launcher[16];      /* sandbox, docker, slurm */
	char launcher_ref[128]; /* container id, Slurm job id */
	char cgroup[256]; /* cgroup path relative to the controller root */
};

/* "<dir>/<file>" on the heap. */
char *attempt_path(const char *dir, const char *file);

/* Atomic, not synced: after a power loss an older lease has an earlier
 * deadline, so the runner stops sooner, never later, than the workspace
 * allows (docs/recovery.md, "Durability"). */
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

/* Atomic always (temp + rename); durable (fsync of the file and the
 * directory) only when durable: the records a reader relies on after a
 * power loss (the job's pid, cgroup, launcher_ref), not the phases that a
 * later write supersedes (docs/recovery.md, "Durability"). */
int attempt_state_write(const char *dir, const struct attempt_state *st,
                        bool durable, struct err *e);
int attempt_state_read(const char *dir, struct attempt_state *st,
                       struct err *e);

/* Append one event as a JSON line to an O_APPEND fd (one write call). */
int attempt_event_append(int fd, json_t *event, struct err *e);

/* Called for each complete line of events: ev is the parsed event (NULL
 * for a malformed line; borrowed), line its text (NUL-terminated).  A
 * negative return stops the walk. */
typedef int (*attempt_event_fn)(void *arg, json_t *ev, const char *line,
                                struct err *e);
/* Walk the complete lines of buf[0, n) (the newlines are overwritten); a
 * torn last line is left.  Returns the bytes of the lines fn accepted;
 * *rc gets the negative return of fn that stopped it, else 0. */
size_t attempt_events_split(char *buf, size_t n, attempt_event_fn fn, void *arg,
                            int *rc, struct err *e);
/* attempt_events_split over the whole events file (at most
 * ATTEMPT_EVENTS_MAX bytes); TERR_NOTFOUND when there is none. */
int attempt_events_read(const char *dir, attempt_event_fn fn, void *arg,
                        struct err *e);

/* Start time of a process (field 22 of /proc/<pid>/stat); 0 if gone. */
uint64_t proc_start_time(pid_t pid);
/* True when the runner recorded in st still runs (pid and start time). */
bool attempt_runner_alive(const struct attempt_state *st);

#endif
