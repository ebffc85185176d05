/* ws.h: the reference workspace server's shared state and module API.
 *
 * One process, one SQLite connection behind one mutex (store_lock), two
 * libmicrohttpd daemons (TLS, and optionally plain HTTP on loopback for the
 * SSH transport) in epoll + thread-pool mode.  Long-polls suspend their
 * connection (wait.c) and are resumed when any state changes (ws_notify)
 * or their deadline passes (the sweeper thread). */
#ifndef TETHER_WS_H
#define TETHER_WS_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "workspace/server/store.h"

#define WS_PROTOCOL       1
#define WS_SCHEMA_VERSION 5
#define WS_MAX_DEPTH      16
#define WS_MAX_NAME       128
#define WS_MAX_LABELS     64
#define WS_MAX_PATH       1024
#define WS_DISCARD_CAP    (16 << 20) /* body bytes read after an early error */

struct ws_conf {
	char *listen;
	int64_t port;
	int64_t plain_port;
	char *cert;
	char *key;
	char *db;
	int64_t threads;
	int64_t poll_ms;
	int64_t poll_max_wait_ms;
	int64_t lease_ttl_ms;
	int64_t lost_grace_ms;
	int64_t lost_margin_ms;
	int64_t gang_start_timeout_ms;
	int64_t max_body;
	int64_t max_log_chunk;
	int64_t max_output;
	int64_t max_snapshot;
	int64_t log_retention_ms;
	int64_t output_retention_ms;
	int64_t max_connections;
	int64_t conn_memory;
	char *log_level;
};

extern const struct conf_key ws_conf_table[];

struct waiter;
struct MHD_Daemon;

struct ws {
	char *dir;
	struct ws_conf conf;
	char admin_hash[65];
	sqlite3 *db;
	pthread_mutex_t db_mu;
	/* long-poll waiters (wait.c) */
	pthread_mutex_t wait_mu;
	pthread_cond_t wait_cond;
	uint64_t gen[2]; /* per enum wait_kind */
	struct waiter *waiters[2];
	struct waiter **wait_buckets; /* parked lease polls by agent id */
	int64_t nparked[2];
	void *wait_heap[2]; /* parked requests by deadline (wait.c) */
	size_t wait_heap_cap[2];
	bool stopping;
	pthread_t sweeper;
	/* wall minus monotonic clock at the last check (sched_clock_check) */
	double clock_offset;
	bool clock_known;
	/* handler runs of resumed (woken) lease polls and log reads: the
	 * count GET /api/v1/stats shows (tests/bb: wake only who can act) */
	uint64_t lease_wakeups, log_wakeups;
	struct MHD_Daemon *tls_d, *plain_d;
	int port, plain_port;
	/* the metric points' own store (store-metrics.c) */
	struct mstore *mstore;
	double metrics_swept; /* retention: jobs ended before this are gone */
};

/* config.c */
int config_load(struct ws *ws, const char *dir, struct err *e);
char *config_path(struct ws *ws, const char *name);

/* init.c: `tether-workspace init --dir D` */
int init_run(const char *dir, int port, int plain_port, char *const *tls_ips,
             int ntls_ips, struct err *e);

/* backup.c: `tether-workspace backup --dir D TARGET` */
int backup_run(const char *dir, const char *to, struct err *e);

/* tls.c: write a self-signed EC certificate for 127.0.0.1 and localhost */
int tls_write_selfsigned(const char *cert_path, const char *key_path,
                         struct err *e);
/* The same for 127.0.0.1, ::1, localhost and the IP addresses ips (init
 * --tls-ip: a workspace agents reach on another address). */
int tls_write_selfsigned_ips(const char *cert_path, const char *key_path,
                             char *const *ips, int nips, struct err *e);

/* store.c: the wall clock, seconds since the epoch */
double ws_now(void);

/* util: tokens and hashing (auth.c) */
void auth_new_token(const char *prefix, char *out, size_t size);
void auth_hash(const char *token, char out[65]);
bool auth_valid_name(const char *s, size_t max);

/* api-admin.c: revoke an agent; lost_now marks its live attempts lost. */
void agent_revoke(struct ws *ws, const char *id, bool lost_now);
/* api-agent.c: validators shared with lease.c */
int agent_check_labels(json_t *labels, const char *field, struct err *e);
int agent_check_capacity(json_t *cap, const char *where, struct err *e);

/* retention.c: delete logs, outputs and snapshots past retention;
 * returns the number of rows deleted. */
int retention_sweep(struct ws *ws);

/* checkpoint.c: the job's newest checkpoint as a lease item's
 * `checkpoint` ({"id","size","attempt","created_at"} or null), an
 * attempt's own ({"sha256","size"} or null), its last progress value (or
 * null), and recording a progress or final event's value. */
json_t *checkpoint_of_job(struct ws *ws, int64_t job);
json_t *checkpoint_of_attempt(struct ws *ws, int64_t job, int64_t att);
json_t *checkpoint_progress(struct ws *ws, int64_t job, int64_t att);
void checkpoint_note_progress(struct ws *ws, int64_t job, int64_t att,
                              json_t *ev);
/* Give a new job another job's checkpoint (checkpoint_of_job's object) as
 * its resume pointer, recorded as attempt 0 (spec checkpoint.resume_from).
 * Inside the caller's transaction. */
int checkpoint_give(struct ws *ws, int64_t job, json_t *ck);

/* metrics.c: metric events (type "metrics") in an events batch: check
 * one (400 naming the field), store the batch's points in the metrics store
 * (before its other events are stored; idempotent by seq there: the events
 * table keeps no row for them), and retention. */
int metrics_open(struct ws *ws, struct err *e); /* <dir>/metrics.db */
int metrics_check_event(json_t *ev, const char *where, struct err *e);
bool metrics_is_event(json_t *ev);
int metrics_apply(struct ws *ws, int64_t job, int64_t att, json_t *evs);
void metrics_retention(struct ws *ws, double before);

/* httpd.c: start and stop the two libmicrohttpd daemons */
int httpd_start(struct ws *ws, struct err *e);
void httpd_stop(struct ws *ws);

/* wait.c */
enum wait_kind { WAIT_LEASE = 0, WAIT_LOG = 1 };
/* Wake every parked request (any state change). */
void ws_notify(struct ws *ws);
/* Like ws_notify, but resumes only the lease polls of agent_id. */
void ws_notify_agent(struct ws *ws, const char *agent_id);
/* Wake the parked log readers of one job (new bytes, a new state). */
void ws_notify_job(struct ws *ws, int64_t job);
/* Wake every parked log reader. */
void ws_notify_logs(struct ws *ws);
/* logs.c: the path of an attempt's log file (its job's directory when
 * att is 0); caller frees. */
char *log_path(struct ws *ws, int64_t job, int64_t att);
/* logs.c: the log_length of an attempt's final event, -1 when it gave none
 * (or has none yet); db locked. */
int64_t log_final_length(struct ws *ws, int64_t job, int64_t att);
/* An ended attempt's log is complete once it holds final_len bytes (any
 * length when final_len < 0: the final event did not say). */
bool log_complete(bool terminal, int64_t len, int64_t final_len);
int wait_start(struct ws *ws, struct err *e);
void wait_stop(struct ws *ws);
/* Free the parked requests' index once no request runs (after httpd_stop). */
void wait_free(struct ws *ws);

/* lease.c: write the last_seen times noted since the last flush, in one
 * transaction; store_lock held. */
void lease_hb_flush(struct ws *ws);
/* lease.c: an attempt was created for agent_id: its polls' in-memory
 * "nothing to do" state no longer holds; store_lock held. */
void lease_agent_busy(const char *agent_id);

/* sched.c */
/* Resume the parked lease polls that could take a queued job: for each of
 * the first queued jobs, up to a few parked polls with room whose agent
 * fits it.  Takes store_lock; returns how many polls it resumed. */
int sched_wake_queued(struct ws *ws);
/* Mark attempts whose lease lapsed (ttl + grace + margin) lost; requeue. */
int sched_expire(struct ws *ws);
/* Has the wall clock stepped since the last check?  Then move live lease
 * deadlines and agents' last-seen times with it.  store_lock held: called by
 * the sweeper and before a lease poll writes deadlines, so a deadline
 * written after a step is never shifted by it again. */
void sched_clock_check(struct ws *ws);
/* End an attempt with reason; requeue or finish the job (inside a txn). */
int sched_end_attempt(struct ws *ws, int64_t job, int64_t attempt,
                      const char *reason, bool counted);
/* Give up to room queued jobs to agent; appends lease items to jobs.
 * keep (may be NULL): where a lease poll keeps the agent's fit (labels,
 * capacity) for sched_wake_queued; replaced when the agent is loaded. */
struct agent_fit;
/* Gang reservation for a polling agent with `slots` free now (its poll's
 * free.slots): rank 0 of one multi-node job in jobs, the other ranks to
 * parked polls (docs/multi-node.md); how many items (0 or 1).  Inside the
 * caller's transaction. */
int sched_assign_gang(struct ws *ws, const char *agent_id, int64_t slots,
                      json_t *jobs);
int sched_assign(struct ws *ws, const char *agent_id, int64_t room,
                 json_t *jobs, struct agent_fit **keep);
void sched_fit_free(struct agent_fit *f);
/* Another holder of a kept fit (fits are shared: refcounted, read-only). */
struct agent_fit *sched_fit_ref(struct agent_fit *f);
/* The agent's fit as sched_assign keeps it, or NULL; store_lock held. */
struct agent_fit *sched_fit_load(struct ws *ws, const char *agent_id);
/* Attempts of agent_id still 'assigned' (never reported) that its poll's
 * running list does not name: the reply that handed them went to a poll
 * nobody read (a killed agent's parked request).  Appends them to jobs as
 * the same attempt again (the agent dedups by job and attempt), at most
 * room; returns how many.  Their lease deadline is not moved. */
/* A draining agent's poll: end as handed_back (requeued, not counted)
 * every attempt still `assigned` to it that its running list does not
 * name, or every one when it exits.  Returns how many. */
int sched_handback_unheld(struct ws *ws, const char *agent_id, json_t *running,
                          bool all);
int sched_reoffer(struct ws *ws, const char *agent_id, int64_t room,
                  json_t *running, json_t *jobs);
/* "unschedulable: ..." for a queued job, or NULL (caller frees). */
char *sched_queue_reason(struct ws *ws, int64_t job);
bool sched_reason_terminal(const char *state);
/* 0 when the attempt is the job's current one and the agent's;
 * TERR_NOTFOUND when it was never given to that agent; TERR_CONFLICT when
 * it is lost, ended or superseded. */
int sched_attempt_check(struct ws *ws, int64_t job, int64_t attempt,
                        const char *agent_id);

#endif
