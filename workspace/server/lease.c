/* lease.c: POST /agents/lease: the agent's heartbeat, lease renewal and
 * command channel.  It answers at once when it has anything for the agent
 * (a new job, an unsent cancel, a drain, a lost attempt) and otherwise
 * parks until a change for this agent wakes it (wait.c) or the wait
 * passes. */
#include "workspace/server/http.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct lease_out {
	json_t *jobs, *renewed, *cancel, *lost;
	json_t *rdv; /* rendezvous items (multi-node start barrier) */
	bool drain, urgent;
	bool leaving; /* the agent said it drains, is preempted or exits */
	int requeued; /* attempts handed back for it */
	int64_t room; /* room left for new jobs */
};

static void lease_out_free(struct lease_out *o)
{
	json_decref(o->jobs);
	json_decref(o->renewed);
	json_decref(o->cancel);
	json_decref(o->lost);
	json_decref(o->rdv);
}

/* A poll that ends without a lease reply (store_lock held: released). */
static int lease_refuse(struct req *r, struct lease_out *o, json_t *b,
                        int status, const char *code, const char *msg)
{
	store_unlock(r->ws);
	lease_out_free(o);
	json_decref(b);
	return reply_error(r, status, code, NULL, "%s", msg);
}

static int check_lease(json_t *b, struct err *e)
{
	static const char *const keys[] = {
	    "wait",     "queue_room", "draining", "running", "free",
	    "capacity", "preempting", "exiting",  NULL};
	static const char *const rkeys[] = {"job", "attempt", "state", NULL};
	double d;
	int64_t i64;
	bool bo;
	const char *s;
	json_t *run, *it;
	size_t i;
	int r;

	if ((r = json_check_keys(b, "", keys, e)) < 0 ||
	    (r = json_get_num(b, "", "wait", false, 0, 3600, &d, e)) < 0 ||
	    (r = json_get_int(b, "", "queue_room", false, 0, 10000, &i64, e)) <
	        0 ||
	    (r = json_get_bool(b, "", "draining", false, &bo, e)) < 0 ||
	    (r = json_get_bool(b, "", "preempting", false, &bo, e)) < 0 ||
	    (r = json_get_bool(b, "", "exiting", false, &bo, e)) < 0)
		return r;
	if (json_object_get(b, "free") &&
	    !json_is_object(json_object_get(b, "free")))
		return err_set(e, TERR_INVAL, "free: expected an object");
	if (json_object_get(b, "capacity") &&
	    (r = agent_check_capacity(json_object_get(b, "capacity"),
	                              "capacity", e)) < 0)
		return r;
	run = json_object_get(b, "running");
	if (run == NULL)
		return 0;
	if (!json_is_array(run) || json_array_size(run) > 10000)
		return err_set(e, TERR_INVAL, "running: expected an array");
	json_array_foreach(run, i, it)
	{
		char w[48];
		snprintf(w, sizeof(w), "running[%zu]", i);
		if ((r = json_check_keys(it, w, rkeys, e)) < 0 ||
		    (r = json_get_int(it, w, "job", true, 1, INT64_MAX, &i64,
		                      e)) < 0 ||
		    (r = json_get_int(it, w, "attempt", true, 1, INT64_MAX,
		                      &i64, e)) < 0 ||
		    (r = json_get_str(it, w, "state", false, 32, &s, e)) < 0)
			return r;
	}
	return 0;
}

/* Heartbeats off the durable path (docs/performance.md F2): a poll that
 * changes nothing but last_seen (same free capacity, capacity, running
 * count, and not draining, preempting or exiting) only notes the time
 * here; lease_hb_flush writes those times in one transaction (the sweeper,
 * every second; readers of last_seen flush first).  Any other change is
 * written at once, as before.  A crash loses at most a second of
 * last_seen, which only the `lost` display (3 poll periods) reads.
 * store_lock guards the table; inside a caller's transaction the flush
 * joins it. */
struct hb_ent {
	char id[48];
	char *free, *cap;
	int64_t running;
	int flags;
	double seen;
	bool dirty;
	/* polls this agent sent: a parked one whose number is no longer the
	 * last is one the agent gave up on (it cancels a held poll when it
	 * drains or is preempted; over TLS the closed socket is not seen
	 * at once) and must not act on its stale body */
	uint64_t polls;
	/* the quiet cache (below): valid while epoch and the agents row's
	 * version are those it was read at */
	bool quiet;
	uint64_t epoch;
	uint32_t ver;
	int64_t rowid, queue_depth;
	struct agent_fit *fit;
};

static struct hb_ent *hb_tab;
static size_t hb_size, hb_used;

static size_t hb_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct hb_ent *hb_get(const char *id)
{
	size_t i;

	if (hb_used * 2 >= hb_size) {
		struct hb_ent *old = hb_tab;
		size_t n = hb_size;

		hb_size = hb_size ? hb_size * 2 : 1024;
		hb_tab = xcalloc(hb_size, sizeof(*hb_tab));
		for (size_t j = 0; j < n; j++) {
			if (old[j].id[0] == '\0')
				continue;
			i = hb_hash(old[j].id) & (hb_size - 1);
			while (hb_tab[i].id[0] != '\0')
				i = (i + 1) & (hb_size - 1);
			hb_tab[i] = old[j];
		}
		free(old);
	}
	i = hb_hash(id) & (hb_size - 1);
	while (hb_tab[i].id[0] != '\0' && strcmp(hb_tab[i].id, id) != 0)
		i = (i + 1) & (hb_size - 1);
	if (hb_tab[i].id[0] == '\0') {
		snprintf(hb_tab[i].id, sizeof(hb_tab[i].id), "%s", id);
		hb_tab[i].running = -1;
		hb_tab[i].flags = -1;
		hb_tab[i].rowid = -1;
		hb_used++;
	}
	return &hb_tab[i];
}

static bool same_text(const char *now, const char *kept)
{
	return now == NULL || (kept != NULL && strcmp(now, kept) == 0);
}

/* The quiet cache: no per-poll SQLite for an agent with nothing to do
 * (docs/performance.md F2b).  Most of 10,000 parked polls belong to agents
 * that run nothing, are not draining, and find the queue empty; for them a
 * poll (and its wake at the deadline) used to read the database five times
 * and commit an empty transaction.  An agent is quiet when its row says
 * online (not revoked, draining or offline), drain 0, and it has no live
 * attempt; a poll that lists nothing running and says it is not leaving
 * then gets what lease_check would give it without asking the database:
 * no renewals, cancels, drain or re-offers, and jobs only when the queue
 * holds one.  The database stays the only truth, written as before; the
 * cache is dropped, never patched:
 *   - any write to the agent's row (drain, revoke, a heartbeat that
 *     changes something, a new secret) bumps its version (the update
 *     hook, by rowid), except the last_seen flush below;
 *   - an attempt created for it (sched.c new_attempt: the only place an
 *     attempt becomes live) clears quiet;
 *   - any write to jobs marks the queue maybe non-empty (one indexed read
 *     clears it);
 *   - a rollback drops everything (epoch).
 * Quiet is read again, inside the poll's transaction, by a poll that went
 * the slow way.  store_lock guards all of it (hooks run in the thread
 * that holds it). */
static sqlite3 *hooked_db;
static uint64_t cache_epoch = 1;
static uint32_t *row_ver; /* by agents rowid */
static size_t row_cap;
static bool queue_dirty = true, hb_flushing;

static void on_update(void *arg, int op, const char *db, const char *table,
                      sqlite3_int64 rowid)
{
	(void)arg;
	(void)op;
	(void)db;
	if (strcmp(table, "jobs") == 0)
		queue_dirty = true;
	else if (strcmp(table, "agents") == 0 && !hb_flushing && rowid >= 0 &&
	         (size_t)rowid < row_cap)
		row_ver[rowid]++;
}

static void on_rollback(void *arg)
{
	(void)arg;
	cache_epoch++;
	queue_dirty = true;
}

static void hook(struct ws *ws)
{
	if (hooked_db == ws->db)
		return;
	sqlite3_update_hook(ws->db, on_update, NULL);
	sqlite3_rollback_hook(ws->db, on_rollback, NULL);
	hooked_db = ws->db;
	cache_epoch++;
	queue_dirty = true;
}

void lease_agent_busy(const char *agent_id)
{
	hb_get(agent_id)->quiet = false;
}

static bool cache_valid(struct hb_ent *h)
{
	return h->quiet && h->epoch == cache_epoch && h->rowid >= 0 &&
	       (size_t)h->rowid < row_cap && row_ver[h->rowid] == h->ver;
}

/* A poll that lists nothing running and is not leaving: the only kind the
 * quiet cache answers. */
static bool quiet_shape(json_t *b)
{
	return json_array_size(json_object_get(b, "running")) == 0 &&
	       !json_is_true(json_object_get(b, "draining")) &&
	       !json_is_true(json_object_get(b, "preempting")) &&
	       !json_is_true(json_object_get(b, "exiting"));
}

/* Is this poll one the quiet cache may answer?  store_lock held. */
static bool lease_quiet(struct ws *ws, const char *agent, json_t *b)
{
	struct hb_ent *h;

	hook(ws);
	if (!quiet_shape(b))
		return false;
	h = hb_get(agent);
	if (!cache_valid(h)) {
		h->quiet = false;
		return false;
	}
	return true;
}

/* Read quiet again (the end of a slow poll, inside its transaction, so it
 * sees what this poll wrote). */
static void quiet_read(struct ws *ws, const char *agent)
{
	struct hb_ent *h = hb_get(agent);
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT rowid, drain = 0 AND state NOT IN ('revoked',"
	        "'draining','offline') AND NOT EXISTS (SELECT 1 FROM attempts "
	        "WHERE agent_id = ?1 AND state IN ('assigned','running',"
	        "'cancelling')), queue_depth FROM agents WHERE id = ?1");
	int64_t rowid = -1;
	bool quiet = false;

	hook(ws);
	sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rowid = sqlite3_column_int64(st, 0);
		quiet = sqlite3_column_int(st, 1) != 0;
		h->queue_depth = sqlite3_column_int64(st, 2);
	}
	store_done(st);
	h->quiet = false;
	if (!quiet || rowid < 0 || rowid >= (int64_t)1 << 26)
		return;
	if ((size_t)rowid >= row_cap) {
		size_t n = row_cap ? row_cap : 16384;
		while (n <= (size_t)rowid)
			n *= 2;
		row_ver = realloc(row_ver, n * sizeof(*row_ver));
		if (row_ver == NULL)
			fatalx("out of memory");
		memset(row_ver + row_cap, 0, (n - row_cap) * sizeof(*row_ver));
		row_cap = n;
	}
	if (h->fit == NULL || h->rowid != rowid || h->ver != row_ver[rowid] ||
	    h->epoch != cache_epoch) {
		sched_fit_free(h->fit);
		h->fit = sched_fit_load(ws, agent);
		if (h->fit == NULL)
			return;
	}
	h->rowid = rowid;
	h->ver = row_ver[rowid];
	h->epoch = cache_epoch;
	h->quiet = true;
}

/* Answer a quiet poll from memory: what lease_check would give (nothing
 * but room), unless the queue holds a job: false, go the slow way.  One
 * indexed read when jobs changed since the queue was last seen empty. */
static bool lease_fast(struct req *r, json_t *b, struct lease_out *o)
{
	struct ws *ws = r->ws;
	struct hb_ent *h = hb_get(r->agent_id);
	json_t *room = json_object_get(b, "queue_room");
	int64_t qr = room != NULL ? json_integer_value(room) : h->queue_depth;

	sched_clock_check(ws);
	if (qr > 0 && queue_dirty) {
		sqlite3_stmt *st =
		    store_prep(ws, "SELECT 1 FROM jobs WHERE state = 'queued' "
		                   "AND cancel_requested = 0 LIMIT 1");
		bool any = sqlite3_step(st) == SQLITE_ROW;
		store_done(st);
		if (any)
			return false;
		queue_dirty = false;
	}
	if (qr > 0) {
		sched_fit_free(r->fit); /* as sched_assign keeps it */
		r->fit = sched_fit_ref(h->fit);
	}
	o->room = qr;
	return true;
}

void lease_hb_flush(struct ws *ws)
{
	sqlite3_stmt *st;
	bool open = false, inside = !sqlite3_get_autocommit(ws->db);

	for (size_t i = 0; i < hb_size; i++) {
		if (hb_tab[i].id[0] == '\0' || !hb_tab[i].dirty)
			continue;
		if (!open && !inside && store_begin(ws) < 0)
			return;
		open = true;
		st = store_prep(ws, "UPDATE agents SET last_seen = ?1 WHERE "
		                    "id = ?2 AND (last_seen IS NULL OR "
		                    "last_seen < ?1)");
		sqlite3_bind_double(st, 1, hb_tab[i].seen);
		sqlite3_bind_text(st, 2, hb_tab[i].id, -1, SQLITE_STATIC);
		hb_flushing = true; /* last_seen is not in the quiet cache */
		sqlite3_step(st);
		hb_flushing = false;
		store_done(st);
		hb_tab[i].dirty = false;
	}
	if (open && !inside && store_commit(ws) < 0)
		store_rollback(ws);
}

/* Record the heartbeat: last_seen, free capacity, what runs, and whether
 * the agent is going away (state `draining`, or `offline` once it said it
 * exits; a poll without either makes it `online` again). */
static void heartbeat(struct ws *ws, const char *agent, json_t *b)
{
	sqlite3_stmt *st;
	char *fr = json_object_get(b, "free")
	               ? json_dumps(json_object_get(b, "free"), JSON_COMPACT)
	               : NULL;
	char *cap =
	    json_object_get(b, "capacity")
	        ? json_dumps(json_object_get(b, "capacity"), JSON_COMPACT)
	        : NULL;
	int64_t running =
	    (int64_t)json_array_size(json_object_get(b, "running"));
	int leaving = json_is_true(json_object_get(b, "draining")) ||
	              json_is_true(json_object_get(b, "preempting"));
	int exiting = json_is_true(json_object_get(b, "exiting"));
	int flags = leaving | exiting << 1;
	struct hb_ent *h = hb_get(agent);

	if (flags == 0 && h->flags == 0 && h->running == running &&
	    same_text(fr, h->free) && same_text(cap, h->cap)) {
		h->seen = ws_now();
		h->dirty = true;
		free(fr);
		free(cap);
		return;
	}
	st = store_prep(
	    ws, "UPDATE agents SET last_seen = ?1, free = coalesce(?2, free), "
	        "running = ?3, capacity = coalesce(?4, capacity), drain_sent = "
	        "CASE WHEN ?5 THEN 1 ELSE drain_sent END, state = CASE WHEN "
	        "state = 'revoked' THEN state WHEN ?7 THEN 'offline' WHEN ?5 "
	        "THEN 'draining' ELSE 'online' END WHERE id = ?6");
	sqlite3_bind_double(st, 1, ws_now());
	sqlite3_bind_text(st, 2, fr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)running);
	sqlite3_bind_text(st, 4, cap, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, leaving);
	sqlite3_bind_text(st, 6, agent, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, exiting);
	sqlite3_step(st);
	store_done(st);
	h->running = running;
	h->flags = flags;
	h->dirty = false;
	if (fr != NULL) {
		free(h->free);
		h->free = fr;
	}
	if (cap != NULL) {
		free(h->cap);
		h->cap = cap;
	}
}

/* Renew one listed attempt if current; else report it lost. */
static void renew_one(struct ws *ws, const char *agent, json_t *it,
                      struct lease_out *o)
{
	int64_t job = json_integer_value(json_object_get(it, "job"));
	int64_t att = json_integer_value(json_object_get(it, "attempt"));
	const char *state = json_string_value(json_object_get(it, "state"));
	double ttl = (double)ws->conf.lease_ttl_ms / 1000.0;
	sqlite3_stmt *st;

	if (sched_attempt_check(ws, job, att, agent) != 0) {
		json_array_append_new(o->lost, json_pack("{s:I,s:I}", "job",
		                                         job, "attempt", att));
		o->urgent = true;
		return;
	}
	st =
	    store_prep(ws, "UPDATE attempts SET lease_deadline = ?1, state = "
	                   "CASE WHEN ?2 AND state = 'assigned' THEN 'running' "
	                   "ELSE state END, accepted = 1 WHERE job = ?3 AND "
	                   "attempt = ?4");
	sqlite3_bind_double(st, 1, ws_now() + ttl);
	sqlite3_bind_int(st, 2, state && strcmp(state, "running") == 0);
	sqlite3_bind_int64(st, 3, job);
	sqlite3_bind_int64(st, 4, att);
	sqlite3_step(st);
	store_done(st);
	if (state && strcmp(state, "running") == 0) {
		st = store_prep(ws,
		                "UPDATE jobs SET state = 'running' WHERE id = "
		                "? AND state = 'assigned'");
		sqlite3_bind_int64(st, 1, job);
		sqlite3_step(st);
		store_done(st);
	}
	json_array_append_new(o->renewed,
	                      json_pack("{s:I,s:I,s:f}", "job", job, "attempt",
	                                att, "lease_ttl", ttl));
}

/* A live rank attempt `a` whose gang another rank has decided by ending
 * other than succeeded (sched.c, gang_decides): it is stopped.  Never true
 * for a one-node job (its gang is the live attempt alone). */
#define GANG_STOPPED                                                           \
	"EXISTS (SELECT 1 FROM attempts d WHERE d.job = a.job AND "            \
	"d.attempt - d.rank = a.attempt - a.rank AND d.state NOT IN "          \
	"('assigned','running','cancelling') AND d.reason != 'succeeded')"

/* The poll's free.slots: slots free now (docs/protocol.md), for a gang
 * rank (docs/multi-node.md); from an older agent, its room. */
static int64_t free_slots(json_t *b, int64_t room)
{
	json_t *v = json_object_get(json_object_get(b, "free"), "slots");

	return json_is_integer(v) ? json_integer_value(v) : room;
}

/* A live rank attempt `a` whose gang's first rank to end other than
 * succeeded was preempted (sched.c, gang_decides): it is stopped as
 * preempted, so that it checkpoints (docs/checkpointing.md). */
#define GANG_PREEMPTING                                                        \
	"(SELECT d.reason FROM attempts d WHERE d.job = a.job AND "            \
	"d.attempt - d.rank = a.attempt - a.rank AND d.state NOT IN "          \
	"('assigned','running','cancelling') AND d.reason != 'succeeded' "     \
	"ORDER BY d.ended_at, d.attempt LIMIT 1) = 'preempted'"

/* Cancels for this agent's live attempts of cancelled jobs, and of gangs
 * that one rank's end decided. */
static void cancels(struct ws *ws, const char *agent, struct lease_out *o)
{
	sqlite3_stmt *st = store_prep(
	    ws, "UPDATE attempts AS a SET cancel_sent = 1 WHERE agent_id = ? "
	        "AND state IN ('assigned','running','cancelling') AND (job IN "
	        "(SELECT id FROM jobs WHERE cancel_requested = 1 AND "
	        "attempt = a.attempt - a.rank) OR " GANG_STOPPED ") "
	        "RETURNING job, attempt, "
	        "cancel_sent");

	/* RETURNING shows the new value; find unsent ones first */
	sqlite3_stmt *q = store_prep(
	    ws,
	    "SELECT a.job, a.attempt, a.cancel_sent, j.cancel_requested = 0 "
	    "AND " GANG_PREEMPTING " FROM attempts a JOIN "
	    "jobs j ON j.id = a.job AND j.attempt = a.attempt - a.rank "
	    "WHERE "
	    "a.agent_id = ? AND a.state IN ('assigned','running',"
	    "'cancelling') AND (j.cancel_requested = 1 OR " GANG_STOPPED ")");
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	while (sqlite3_step(q) == SQLITE_ROW) {
		json_array_append_new(
		    o->cancel,
		    json_pack("{s:I,s:I,s:s}", "job",
		              (json_int_t)sqlite3_column_int64(q, 0), "attempt",
		              (json_int_t)sqlite3_column_int64(q, 1), "reason",
		              sqlite3_column_int(q, 3) ? "preempted"
		                                       : "cancelled"));
		if (sqlite3_column_int(q, 2) == 0)
			o->urgent = true;
	}
	store_done(q);
	sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		;
	store_done(st);
}

/* The start barrier (docs/multi-node.md): for each live rank of this
 * agent whose whole gang reported `ready`, the rendezvous: its rank, every
 * rank's address, rank 0's port.  In every reply while the rank lives
 * (the agent writes it once); news the first time. */
static void rendezvous(struct ws *ws, const char *agent, struct lease_out *o)
{
	sqlite3_stmt *q = store_prep(
	    ws, "SELECT a.job, a.attempt, a.rank, a.rendezvous_sent FROM "
	        "attempts a JOIN jobs j ON j.id = a.job AND j.attempt = "
	        "a.attempt - a.rank WHERE a.agent_id = ? AND a.state IN "
	        "('assigned','running') AND a.ready IS NOT NULL AND NOT "
	        "EXISTS (SELECT 1 FROM attempts b WHERE b.job = a.job AND "
	        "b.attempt - b.rank = a.attempt - a.rank AND b.ready IS NULL)");
	sqlite3_stmt *g = store_prep(
	    ws, "SELECT json_extract(ready, '$.address'), json_extract(ready, "
	        "'$.port') FROM attempts WHERE job = ? AND attempt - rank = ? "
	        "ORDER BY rank");
	sqlite3_stmt *u = store_prep(ws, "UPDATE attempts SET rendezvous_sent "
	                                 "= 1 WHERE job = ? AND attempt = ?");

	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	while (sqlite3_step(q) == SQLITE_ROW) {
		int64_t job = sqlite3_column_int64(q, 0);
		int64_t att = sqlite3_column_int64(q, 1);
		int64_t rank = sqlite3_column_int64(q, 2), port = 0;
		json_t *addrs = json_array();

		sqlite3_reset(g);
		sqlite3_bind_int64(g, 1, job);
		sqlite3_bind_int64(g, 2, att - rank);
		while (sqlite3_step(g) == SQLITE_ROW) {
			if (json_array_size(addrs) == 0)
				port = sqlite3_column_int64(g, 1);
			json_array_append_new(
			    addrs, json_string((
			               const char *)sqlite3_column_text(g, 0)));
		}
		json_array_append_new(
		    o->rdv,
		    json_pack("{s:I, s:I, s:I, s:I, s:o, s:I}", "job",
		              (json_int_t)job, "attempt", (json_int_t)att,
		              "rank", (json_int_t)rank, "nodes",
		              (json_int_t)json_array_size(addrs), "addresses",
		              addrs, "master_port", (json_int_t)port));
		if (sqlite3_column_int(q, 3) == 0) {
			o->urgent = true;
			sqlite3_reset(u);
			sqlite3_bind_int64(u, 1, job);
			sqlite3_bind_int64(u, 2, att);
			sqlite3_step(u);
		}
	}
	store_done(u);
	store_done(g);
	store_done(q);
}

static void drain_state(struct ws *ws, const char *agent, struct lease_out *o)
{
	sqlite3_stmt *st = store_prep(ws, "SELECT drain, drain_sent, state IN "
	                                  "('draining','offline') FROM agents "
	                                  "WHERE id = ?");

	sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		o->drain = sqlite3_column_int(st, 0) != 0;
		if (o->drain && sqlite3_column_int(st, 1) == 0)
			o->urgent = true;
		/* said by a later poll than this one (parked since before) */
		o->leaving = sqlite3_column_int(st, 2) != 0;
	}
	store_done(st);
	if (o->urgent && o->drain) {
		st = store_prep(
		    ws, "UPDATE agents SET drain_sent = 1 WHERE id = ?");
		sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
		sqlite3_step(st);
		store_done(st);
	}
}

static void lease_check(struct req *r, json_t *b, struct lease_out *o)
{
	struct ws *ws = r->ws;
	json_t *run = json_object_get(b, "running"), *it, *room;
	int64_t qr = 0, slots;
	int given, reoffered = 0;
	size_t i;

	sched_clock_check(ws); /* before writing deadlines (sched.c) */
	json_array_foreach(run, i, it) renew_one(ws, r->agent_id, it, o);
	cancels(ws, r->agent_id, o);
	rendezvous(ws, r->agent_id, o);
	drain_state(ws, r->agent_id, o);
	room = json_object_get(b, "queue_room");
	if (room != NULL) {
		qr = json_integer_value(room);
	} else {
		sqlite3_stmt *st =
		    store_prep(ws, "SELECT queue_depth FROM agents "
		                   "WHERE id = ?");
		sqlite3_bind_text(st, 1, r->agent_id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			qr = sqlite3_column_int64(st, 0);
		store_done(st);
	}
	/* an agent under a preemption notice takes no new job
	 * (docs/checkpointing.md) */
	if (json_is_true(json_object_get(b, "preempting")))
		log_info("agent %s: preemption notice, no new jobs",
		         r->agent_id);
	/* a job handed to a poll whose reply the agent dropped when it began
	 * to drain (docs/protocol.md), or that it will not start (it exits),
	 * goes back to the queue now, not a lease TTL later */
	if (json_is_true(json_object_get(b, "draining")) ||
	    json_is_true(json_object_get(b, "preempting"))) {
		o->leaving = true;
		if (run != NULL)
			o->requeued = sched_handback_unheld(
			    ws, r->agent_id, run,
			    json_is_true(json_object_get(b, "exiting")));
	}
	if (o->drain || o->leaving)
		return;
	/* jobs handed to a poll whose reply never reached the agent (killed
	 * while its poll was parked) come first; only a poll that lists what
	 * the agent holds can show they are missing */
	if (run != NULL && qr > 0) {
		reoffered = sched_reoffer(ws, r->agent_id, qr, run, o->jobs);
		qr -= reoffered;
		if (reoffered > 0)
			o->urgent = true;
	}
	given = sched_assign(ws, r->agent_id, qr, o->jobs, &r->fit);
	/* the poll's free slots less what it is offered again: those take
	 * slots too (the agent had not seen them when it counted) */
	slots = free_slots(b, qr) - reoffered;
	if (given == 0 && qr > 0 && slots > 0)
		given += sched_assign_gang(ws, r->agent_id, slots, o->jobs);
	if (given > 0)
		o->urgent = true;
	o->room = qr - given;
}

static int lease_reply(struct req *r, struct lease_out *o)
{
	json_t *rep =
	    json_pack("{s:o,s:o,s:o,s:o,s:b,s:f}", "jobs", o->jobs, "renewed",
	              o->renewed, "cancel", o->cancel, "lost", o->lost, "drain",
	              o->drain, "poll", (double)r->ws->conf.poll_ms / 1000.0);

	/* only when there is one (docs/multi-node.md) */
	if (json_array_size(o->rdv) > 0)
		json_object_set(rep, "rendezvous", o->rdv);
	json_decref(o->rdv);
	o->rdv = NULL;
	return reply_json(r, 200, rep);
}

/* Still someone to give jobs to?  A poll parked before its agent was
 * revoked, or whose agent died (the peer closed the socket while the
 * request was suspended), must not take a job: nobody would run it, and
 * it would come back only as `lost` after the lease TTL.  store_lock held. */
static bool lease_conn_closed(struct req *r)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char c;
	ssize_t n;

	if (ci == NULL)
		return false;
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	                  errno != EINTR);
}

static bool lease_agent_gone(struct req *r, bool quiet)
{
	sqlite3_stmt *st;
	bool gone = false;

	if (lease_conn_closed(r))
		return true;
	if (quiet)
		return false; /* its row said online, and is unchanged */
	st = store_prep(r->ws,
	                "SELECT state = 'revoked' FROM agents WHERE id = ?");
	sqlite3_bind_text(st, 1, r->agent_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0))
		gone = true;
	store_done(st);
	return gone;
}

static int agents_lease(struct req *r)
{
	struct ws *ws = r->ws;
	struct lease_out o;
	struct err e = {0};
	json_t *b = NULL;
	double wait = 30;
	int st;
	bool quiet;

	if (r->body.len == 0)
		buf_append(&r->body, "{}", 2, NULL);
	if (req_json(r, &b) < 0)
		return r->status;
	if (check_lease(b, &e) < 0) {
		st = reply_err(r, &e);
		json_decref(b);
		return st;
	}
	json_get_num(b, "", "wait", false, 0, 3600, &wait, NULL);
	if (wait_first(r, (int64_t)(wait * 1000))) {
		store_lock(ws);
		/* A poll its agent gave up on before it was read (the agent
		 * replaced it with one that says more: exiting) must not
		 * record its older news over the newer poll's when the two
		 * are handled out of order: the agent closed this connection
		 * before it sent the newer poll, so once the newer one was
		 * recorded under this lock, this one reads as closed. */
		if (lease_conn_closed(r)) {
			o = (struct lease_out){0};
			return lease_refuse(r, &o, b, 401, "unauthorized",
			                    "the agent closed this poll's "
			                    "connection before it was read");
		}
		r->lease_seq = ++hb_get(r->agent_id)->polls;
		heartbeat(ws, r->agent_id, b);
		store_unlock(ws);
	} else {
		__atomic_add_fetch(&ws->lease_wakeups, 1, __ATOMIC_RELAXED);
	}
	for (;;) {
		o = (struct lease_out){.jobs = json_array(),
		                       .renewed = json_array(),
		                       .cancel = json_array(),
		                       .lost = json_array(),
		                       .rdv = json_array()};
		wait_mark(r);
		store_lock(ws);
		quiet = lease_quiet(ws, r->agent_id, b);
		if (lease_agent_gone(r, quiet))
			return lease_refuse(r, &o, b, 401, "unauthorized",
			                    "this agent was revoked (or its "
			                    "connection closed) while its poll "
			                    "waited");
		if (r->lease_seq != hb_get(r->agent_id)->polls) {
			/* a later poll from the same agent came: this one is
			 * stale (its running list and flags are old) */
			return lease_refuse(r, &o, b, 409, "conflict",
			                    "a later poll from this agent "
			                    "replaced this one");
		}
		if (quiet && lease_fast(r, b, &o)) {
			store_unlock(ws);
			goto checked;
		}
		if (store_begin(ws) < 0) /* no statement one by one */
			return lease_refuse(r, &o, b, 503, "busy",
			                    "the database is busy: poll again");
		lease_check(r, b, &o);
		if (quiet_shape(b))
			quiet_read(ws, r->agent_id);
		if (store_commit(ws) < 0) {
			/* nothing of it happened: the renewals were rolled
			 * back with the rest, so no reply may claim them (the
			 * agent would run on a lease the workspace lets
			 * lapse) */
			store_rollback(ws);
			return lease_refuse(r, &o, b, 503, "busy",
			                    "could not record this poll: poll "
			                    "again");
		}
		store_unlock(ws);
	checked:
		if (o.requeued > 0) {
			ws_notify_logs(ws);
			sched_wake_queued(ws); /* for the other agents */
		}
		if (o.urgent || now_mono_ms() >= r->deadline_ms || ws->stopping)
			break;
		lease_out_free(&o);
		r->lease_room = o.room;
		/* free.slots (docs/protocol.md): a slot free now, for a gang
		 * rank (docs/multi-node.md); an older agent: its room */
		r->lease_slots = free_slots(b, o.room);
		if (wait_park(r)) {
			json_decref(b);
			return REQ_SUSPENDED;
		}
	}
	json_decref(b);
	return lease_reply(r, &o);
}

const struct route routes_lease[] = {
    {"POST", "agents/lease", AUTH_AGENT, BODY_MEM,
     offsetof(struct ws_conf, max_body), agents_lease},
    {NULL, NULL, 0, 0, 0, NULL},
};
