/* agent.h: the daemon's state, shared by its modules.
 *
 * struct agent is the one daemon; struct att is one attempt the agent holds
 * in memory while it is queued, running or finishing (log, events and
 * outputs not yet all acknowledged).  agent.db is the durable record;
 * these structs are rebuilt from it on start (recovery.c). */
#ifndef TETHER_AGENT_H
#define TETHER_AGENT_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/capacity.h"
#include "agent/config.h"
#include "agent/loop.h"
#include "transport/transport.h"

struct jobspec;

struct err;

/* The attempt's life (att.c holds the transition table and alone changes
 * a state; other modules request a transition with att_request). */
enum att_state { ATT_QUEUED, ATT_RUNNING, ATT_FINISHING, ATT_DONE };

/* What a module tells att.c about an attempt (the table in att.c and
 * docs/architecture.md say which state each is allowed in). */
enum att_event {
	ATT_EV_LAUNCHED,      /* the runner is being started (launch.c) */
	ATT_EV_LAUNCH_FAILED, /* starting failed; a final event follows */
	ATT_EV_FINAL,         /* an agent-made final event is stored */
	ATT_EV_ENDED,         /* the runner ended and its final event is in */
	ATT_EV_REPORTED,      /* all reported (or nobody will take it) */
	ATT_EV_DROPPED,       /* never started and never to be reported */
	ATT_EV_GIVE_UP,       /* refused but its final event could not be
	                       * stored: never picked again (this run) */
};

struct att {
	struct agent *a;
	char *job;
	int64_t attempt;
	bool local;
	bool rank; /* of a multi-node job: starts before other queued jobs */
	char *dir;
	enum att_state state;
	int64_t priority, fifo;
	double cpus;
	int64_t memory, gpus;
	char *gpu_ids; /* JSON array text, "[0,1]" */
	char *snapshot;
	int64_t lease_ttl_ms, lease_mono_ms;

	/* runner */
	pid_t runner_pid;
	int pidfd, wd;
	bool runner_gone, preparing;
	int64_t launched_mono;
	/* runner restarts (restart.c): how many (agent.db), and the dead
	 * runner's pid and start time, so its state.json is not taken for
	 * the new runner's */
	int runner_restarts;
	pid_t stale_pid;
	uint64_t stale_start;
	struct tp_call *snap_call;

	/* log shipping (shipper.c) */
	int64_t log_acked;
	struct tp_call *log_call;
	/* events (outbox.c) */
	int64_t events_off, last_seq;
	bool final_seen, final_acked, not_current;
	/* CLOCK_MONOTONIC ms before which a running attempt's events are not
	 * tailed again: metrics events came, up to ten a second, and each
	 * tail is a durable transaction (outbox_tail_due) */
	int64_t tail_hold_ms;
	bool tail_saw_metrics;
	/* the workspace answered a lease poll with this finishing attempt in
	 * `lost`: it has ended it (normally: its final event arrived); no
	 * longer listed in polls; the final event's reply still decides */
	bool ws_ended;
	struct tp_call *ev_call;
	/* outputs (outputs.c) */
	bool outputs_done;
	/* a rank > 0 of a job that keeps rank 0's outputs only (the lease
	 * item's rank, docs/multi-node.md): it uploads none */
	bool outputs_none;
	/* look-ahead environment build tried (lookahead.c) */
	bool ahead_done;
	/* att_poke_soon asked for a poke on the next loop turn */
	bool poke_due;
	struct tp_call *out_call;
	char *out_path;
	/* checkpoint upload (checkpoint.c) */
	struct ckpt *ckpt;

	struct att *next;
};

struct agent {
	struct agent_conf conf;
	/* where conf came from, for SIGHUP (reload.c) */
	const char *conf_path;
	char **conf_sets;
	int conf_nsets;
	struct loop *loop;
	sqlite3 *db;
	const struct transport_ops *tp;
	struct transport *t;
	struct loop_timer *http_timer;
	char *agent_id, *secret, *runner_path;
	char *cap_pending; /* capacity sent in the poll in flight */
	struct capacity cap;
	struct att *atts;
	int ino_fd, sig_fd, lock_fd;

	/* connection (conn.c) */
	bool conn_down, auth_failed;
	int conn_failures;
	int64_t next_retry_mono;
	struct loop_timer *conn_timer;

	/* lease / registration (lease.c, register.c) */
	struct tp_call *lease_call, *reg_call;
	int64_t lease_sent_mono, lease_room_sent;
	struct loop_timer *lease_timer;
	bool re_register, lease_quick, lease_was_quick;
	/* what the workspace was told of this agent's going away: flags
	 * (LEASE_TOLD_*) of the poll in flight, and of the last one
	 * answered (lease_tell) */
	int lease_told_sent, lease_told_acked;

	/* lifecycle */
	bool draining, quit;
	bool exiting; /* drained: the last poll says so (agentd.c) */
	int64_t exit_since_mono;
	int64_t drain_since_mono; /* when draining began (harden.c) */
	bool disk_low;            /* state dir nearly full (harden.c) */
	struct preempt *preempt;  /* preemption notices (preempt.c) */
	struct bgpoll *slurm;     /* Slurm partitions (slurm-poll.c) */
	struct bgpoll *spark;     /* Spark master's status (spark-poll.c) */
	struct lookahead *ahead;  /* environment build ahead (lookahead.c) */
	int sigints;
	struct loop_timer *sched_timer, *hk_timer;
	struct loop_timer *att_timer; /* deferred pokes (att.c) */
};

/* agentd.c */
int agent_run(struct agent *a, struct err *e);
/* Release everything the daemon holds (runners keep running). */
void agent_free(struct agent *a);
/* Ask for a scheduling pass on the next loop turn. */
void agent_kick(struct agent *a);
/* Record a status line for `tether-agent status` (meta table). */
void agent_note(struct agent *a, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* conn.c: reachability of the workspace, backoff with jitter. */
void conn_init(struct agent *a);
bool conn_usable(struct agent *a);
/* Classify a failed reply; returns true when the call should be retried
 * later (network, 5xx, 429) and schedules the retry probe. */
bool conn_failed(struct agent *a, const struct tp_reply *rep, const char *what);
void conn_ok(struct agent *a);
int64_t conn_backoff_ms(int failures, int64_t min_ms, int64_t max_ms,
                        int64_t retry_after_ms);
/* 401: reload credentials (rotation) or stop leasing for good. */
void conn_auth_failed(struct agent *a, const struct tp_reply *rep);

/* lease.c */
void lease_start(struct agent *a);
void lease_poll_soon(struct agent *a, int64_t delay_ms);
/* What a lease poll tells the workspace about this agent going away. */
#define LEASE_TOLD_DRAIN   1 /* draining: no new jobs */
#define LEASE_TOLD_PREEMPT 2 /* under a preemption notice */
#define LEASE_TOLD_EXIT    4 /* drained and exiting */
int lease_told_now(const struct agent *a);
/* Tell the workspace at once that this agent drains, is preempted or
 * exits: a poll held since before it (it offered room) is dropped and a
 * new one, not held, goes out. */
void lease_tell(struct agent *a);
/* True while a poll telling `what` (LEASE_TOLD_*) is yet to be sent or
 * answered: a preempted attempt's final event waits for it. */
bool lease_telling(const struct agent *a, int what);

/* register.c */
const char *register_name(const struct agent *a);
json_t *register_body(struct agent *a);
int register_start(struct agent *a, struct err *e);

/* queue.c */
int queue_add_leased(struct agent *a, json_t *job, int64_t now_mono,
                     struct err *e);
int queue_submit_local(sqlite3 *db, const char *spec_text, double cpus,
                       int64_t memory, int64_t gpus, int64_t priority,
                       char **job_out, struct err *e);
void queue_schedule(struct agent *a);
/* Refuse a job that can never fit this node. NULL when it fits. */
/* Why a job's resources.disk is over attempt_max_disk (heap), or NULL. */
char *queue_disk_too_big(const struct agent_conf *c, int64_t disk);
/* True when the spec's job goes to Slurm on this agent (its launcher, or
 * default_launcher); such a job takes none of the head node's capacity. */
bool queue_to_slurm(const struct agent *a, const struct jobspec *s);
/* queue_too_big for a spec: NULL for a Slurm job. */
char *queue_too_big_spec(const struct agent *a, const struct jobspec *s);
char *queue_too_big(const struct agent *a, double cpus, int64_t memory,
                    int64_t gpus);

/* launch.c */
void launch_start(struct agent *a, struct att *t);
/* Start `tether-runner run DIR` for t (the files are in place). */
int launch_fork(struct agent *a, struct att *t, struct err *e);
int launch_load_spec(struct agent *a, struct att *t, json_t **out,
                     struct err *e);
/* spec.json of the attempt (job spec + runner settings) into dir. */
int launch_write_spec(struct agent *a, struct att *t, const char *dir,
                      struct err *e);
/* environ without the registration token (a new array; the strings are
 * environ's). */
char **launch_env(void);
char *launch_find_runner(const struct agent_conf *c);

/* att.c */
struct att *att_new(struct agent *a, const char *job, int64_t attempt);
struct att *att_find(struct agent *a, const char *job, int64_t attempt);
void att_free(struct att *t);
void att_remove(struct agent *a, struct att *t);
int att_watch(struct att *t, struct err *e);
/* Move the attempt along now; may free t (call it last).  Only the
 * agent's own loop callbacks call it (tick, inotify); others call
 * att_poke_soon. */
void att_poke(struct att *t);
/* Poke t on the next loop turn (from another module's callback: no
 * re-entry into that module from inside it). */
void att_poke_soon(struct att *t);
/* Request a transition.  0 when made; TERR_INVAL (nothing changed) when
 * the table has no such step from t's state; a database error otherwise.
 * REPORTED and DROPPED free t, even on a database error. */
int att_request(struct att *t, enum att_event ev, struct err *e);
const char *att_state_name(enum att_state s);
int att_state_parse(const char *s);
void att_on_inotify(struct agent *a, int fd);
void att_cancel(struct att *t, const char *reason);
void att_write_lease(struct att *t);
/* rendezvous.c (docs/multi-node.md): the address this node offers the
 * ranks of a multi-node job (node_address, else the source address of the
 * route to the workspace; NULL when neither is known), and a lease reply's
 * `rendezvous` item written for the attempt's waiting runner. */
char *rdv_node_address(const struct agent *a);
void rdv_apply(struct agent *a, json_t *item);

/* restart.c: start the runner of a running attempt again after it died
 * without a result (it re-attaches to the job, docs/state-dir.md); 1 when
 * started (or waiting for a lease renewal first), 0 when the attempt used
 * its RESTART_MAX restarts, < 0 on error. */
#define RESTART_MAX 3
int restart_runner(struct att *t, struct err *e);

/* Append an agent-made final event (refused, lost, cancelled queued). */
int att_final_event(struct att *t, const char *reason, const char *message,
                    struct err *e);

/* shipper.c */
void shipper_kick(struct att *t);
bool shipper_done(struct att *t);
/* The attempt's log file size: its final length once the runner ended. */
int64_t shipper_log_size(struct att *t);

/* outbox.c */
int outbox_tail(struct att *t, struct err *e);
/* Whether a running attempt's events may be tailed now; when not, the
 * scheduling pass is armed for when they may. */
bool outbox_tail_due(struct att *t);
void outbox_kick(struct att *t);
/* Forget the attempt's undelivered events (it is done and not current). */
void outbox_drop(struct att *t);

/* outputs.c */
void outputs_kick(struct att *t);

/* recovery.c */
int recovery_load(struct agent *a, struct err *e);

/* slurm-poll.c: when Slurm capacity is on, a worker thread asks scontrol
 * at heartbeat pace; the capacity JSON then carries slurm.partitions. */
int slurm_poll_start(struct agent *a, struct err *e);
void slurm_poll_stop(struct agent *a);
/* capacity_json() plus "slurm": {"partitions": [...]} once known. */
json_t *slurm_poll_capacity(struct agent *a);
/* What a capacity change is judged by: the JSON without the free disk. */
char *slurm_poll_fingerprint(const json_t *cap);

/* spark-poll.c: when spark_master is a standalone master, a worker
 * thread reads its JSON status at heartbeat pace; spark_poll_add() puts
 * the latest summary into a capacity object as "spark". */
int spark_poll_start(struct agent *a, struct err *e);
void spark_poll_stop(struct agent *a);
void spark_poll_add(struct agent *a, json_t *cap);
/* The master's web UI: spark_master_ui, else http://<host>:8080 of a
 * spark:// master; NULL otherwise (heap). */
char *spark_poll_ui(const struct agent_conf *c);
/* GET url (the master's /json/) into *out; errors name the url. */
int spark_status_get(const char *url, json_t **out, struct err *e);
/* {"master", "workers", "cores", "idle_cores", "memory", "worker_cores",
 * "worker_memory"} of the ALIVE workers (memory in bytes). */
json_t *spark_status_summary(json_t *status, const char *master);
/* The same summary of YARN's RUNNING node managers (master "yarn"). */
struct yarn_nodes;
json_t *spark_yarn_summary(const struct yarn_nodes *n);

/* lookahead.c: while a job waits in the local queue, build its
 * environment ahead (`tether-runner envs build DIR`, one at a time, only
 * with a spare CPU); the loop watches the child through a pidfd. */
void lookahead_kick(struct agent *a);
void lookahead_free(struct agent *a);
/* The job of a look-ahead build was cancelled: the build stops (its
 * runner sees the cancel file in its directory, as a job's runner does). */
void lookahead_cancel(struct agent *a, const char *job, int64_t attempt,
                      const char *reason);

/* reload.c: SIGHUP: re-read agent.conf, apply what can change live. */
void reload_config(struct agent *a);

/* housekeeping.c */
void housekeeping_run(void *arg);
/* Run housekeeping within a second (an attempt is done, or space is
 * short); many calls in that second make one run. */
void housekeeping_soon(struct agent *a);

#endif
