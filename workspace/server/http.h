/* http.h: one HTTP request as the API handlers see it, and the routes. */
#ifndef TETHER_WS_HTTP_H
#define TETHER_WS_HTTP_H

#include "workspace/server/ws.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>

struct MHD_Connection;
struct MHD_Response;
struct sha256_ctx;
struct agent_fit;

#define REQ_MAX_SEGS 8
/* Seconds a connection may sit idle before the listener drops it. */
#define HTTPD_IDLE_S  120
#define REQ_SUSPENDED 0 /* handler parked the request (long-poll) */

enum auth_kind {
	AUTH_NONE,  /* handler checks (registration token) */
	AUTH_ADMIN, /* admin token */
	AUTH_AGENT, /* agent secret */
	AUTH_ANY,   /* admin token or agent secret */
};

/* BODY_SINK: each piece of the body goes to the route's sink as it
 * arrives (after its pre-check passed), nothing is buffered. */
enum body_kind { BODY_NONE, BODY_MEM, BODY_FILE, BODY_SINK };

struct req;
typedef int (*handler_fn)(struct req *r);

struct route {
	const char *method;
	const char
	    *pattern; /* "jobs/ * /log"; a trailing "**" takes the rest */
	enum auth_kind auth;
	enum body_kind body;
	size_t cap_offset; /* offsetof(struct ws_conf, max_...) */
	handler_fn fn;
	handler_fn pre; /* optional: runs before the body is read */
	/* BODY_SINK: takes one piece of the body; -1 drops the connection */
	int (*sink)(struct req *r, const char *data, size_t n);
};

struct req {
	struct ws *ws;
	struct MHD_Connection *conn;
	const struct route *route;
	char *path; /* after /api/v1/ */
	char *segs[REQ_MAX_SEGS];
	int nseg;
	char *rest; /* what "**" matched */
	bool is_admin;
	char agent_id[48];
	/* body */
	struct buf body;
	int fd;
	char *tmp_path;
	struct sha256_ctx *sha;
	int64_t size, cap;
	bool too_large;
	bool in_pre;    /* a pre-check runs: reply_bytes keeps a copy */
	char *pre_text; /* that copy */
	/* a handler's own state for the request, freed (and undone) by
	 * state_free when the request ends however it ends */
	void *state;
	void (*state_free)(struct req *r);
	/* an error found before the body was read, sent at the end */
	int early_status;
	char *early_body;
	/* long-poll */
	int64_t deadline_ms;
	uint64_t gen;
	enum wait_kind wait_kind;
	int64_t wait_job;    /* a log reader's job */
	int64_t lease_room;  /* a parked lease poll's room for new jobs */
	int64_t lease_slots; /* ... and its agent's free slots now */
	uint64_t lease_seq;  /* which of its agent's polls this is (lease.c) */
	struct req *wnext, *wprev; /* the parked requests of its kind */
	struct req *hnext, *hprev; /* a lease poll: its agent's bucket */
	size_t wbucket, heap_idx;
	/* a lease poll: its agent's labels and capacity, for sched_wake_queued
	 * to match queued jobs against without a query (sched.c) */
	struct agent_fit *fit;
	/* reply */
	struct MHD_Response *resp;
	int status;
};

/* Handlers reply with these and return the status (or REQ_SUSPENDED). */
int reply_json(struct req *r, int status, json_t *body);
int reply_error(struct req *r, int status, const char *code, const char *field,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 400/404/409/... from a struct err, with the field named by the message. */
int reply_err(struct req *r, const struct err *e);
int reply_bytes(struct req *r, int status, const void *data, size_t len,
                const char *ctype);
/* Send an open file (takes the fd). */
int reply_fd(struct req *r, int status, int fd, int64_t size);
/* Send size bytes of an open file from off (takes the fd; sendfile on
 * the plain listener). */
int reply_fd_at(struct req *r, int status, int fd, int64_t off, int64_t size);
void reply_header(struct req *r, const char *name, const char *value);
int reply_internal(struct req *r, const char *what);

/* Parse the JSON body (limits: size, depth, UTF-8); replies 400 on error. */
int req_json(struct req *r, json_t **out);
const char *req_arg(struct req *r, const char *name);
const char *req_header(struct req *r, const char *name);
/* Integer query argument within [min,max]; def when absent. -1: replied. */
int req_arg_i64(struct req *r, const char *name, int64_t min, int64_t max,
                int64_t def, int64_t *out);
/* A name query argument (filter): NULL when absent; -1 after replying 400
 * for one over WS_MAX_NAME bytes or with control characters. */
int req_arg_name(struct req *r, const char *name, const char **out);
/* Parse a path segment as a positive id; -1 after replying 404. */
int req_seg_id(struct req *r, int i, int64_t *out);

/* wait.c: park r until ws_notify or its deadline; false: state changed
 * since r->gen was taken, check again. */
bool wait_park(struct req *r);
/* A long-poll's first pass (true: its deadline set now, wait_ms capped at
 * poll_max_wait) or a wake-up after parking (false). */
bool wait_first(struct req *r, int64_t wait_ms);
/* Record the current generation before checking state. */
void wait_mark(struct req *r);
/* How many lease polls and log reads are parked now. */
void wait_counts(struct ws *ws, int64_t *lease, int64_t *log);
/* Resume up to max parked lease polls with room (and, with need_slot, a
 * slot free now) whose agent's fit passes fits(fit, arg); how many.  Called
 * with store_lock held (the lock order is store_lock, then wait_mu). */
int wait_wake_fitting(struct ws *ws,
                      bool (*fits)(const struct agent_fit *, void *), void *arg,
                      int max, bool need_slot);

/* The agent ids (up to max) of parked lease polls with room whose fit
 * passes fits(fit, arg), without waking them (gang reservation,
 * docs/multi-node.md).  store_lock held. */
int wait_parked_fitting(struct ws *ws,
                        bool (*fits)(const struct agent_fit *, void *),
                        void *arg, char (*ids)[48], int max);

/* A rank was given to this agent's parked poll (it wakes to take it): one
 * slot and one room less until it does.  store_lock held. */
void wait_parked_take(struct ws *ws, const char *agent_id);

/* Finish a streamed (BODY_FILE) body: fsync it, give its sha256; the
 * data is in r->tmp_path (an empty file for an empty body). */
int req_body_file(struct req *r, char hex[65]);

/* Move the finished upload into blobs/<hex> (content-addressed). */
int blob_store(struct req *r, const char *hex);

/* The 404 (TERR_NOTFOUND: never given to this agent) or 409
 * (TERR_CONFLICT: not current) reply for sched_attempt_check's rc. */
int reply_attempt_error(struct req *r, int rc, int64_t job, int64_t att);
/* An attempt's upload (PUT .../attempts/J/A/...), before the body: a valid
 * Tether-Sha256 header and an attempt current for this agent (segs 1, 2).
 * 0, or the status of the error reply made. */
int upload_pre(struct req *r, int64_t *job, int64_t *att);
/* After the body: its sha256 (hex) matches Tether-Sha256 and it is stored
 * in blobs/ ('what' names it in the 500). 0, or the reply's status. */
int upload_store(struct req *r, char hex[65], const char *what);

/* http.c: the access and completion callbacks of the daemons. */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *data,
                                size_t *data_size, void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode t);

extern const struct route routes_jobs[], routes_logs[], routes_agent[],
    routes_lease[], routes_attempt[], routes_admin[], routes_files[],
    routes_checkpoint[];
extern const struct route routes_metrics[];

#endif
