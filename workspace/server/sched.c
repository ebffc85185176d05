/* sched.c: the workspace queue: which queued job goes to which agent
 * (placement, total capacity, queue room; priority then FIFO), why a job
 * cannot go anywhere, and attempts that end (final event, lapsed lease,
 * handback) with requeue up to the job's retries.  Callers hold store_lock;
 * the *_assign and *_end functions run inside the caller's transaction. */
#include "workspace/server/http.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

bool sched_reason_terminal(const char *state)
{
	static const char *const live[] = {"queued", "assigned", "running",
	                                   "cancelling", NULL};
	for (int i = 0; live[i]; i++)
		if (strcmp(state, live[i]) == 0)
			return false;
	return true;
}

static int64_t count_attempts(struct ws *ws, int64_t job)
{
	/* gangs (docs/multi-node.md): one whose rank ended uncounted (handed
	 * back, preempted) does not count; a one-node attempt is its gang */
	sqlite3_stmt *st = store_prep(
	    ws,
	    "SELECT count(*) FROM attempts a WHERE job = ?1 AND counted = 1 "
	    "AND rank = 0 AND NOT EXISTS (SELECT 1 FROM attempts b WHERE "
	    "b.job = ?1 AND b.attempt - b.rank = a.attempt AND b.counted "
	    "= 0)");
	int64_t n = 0;

	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	store_done(st);
	return n;
}

static void set_job(struct ws *ws, int64_t job, const char *state,
                    bool terminal)
{
	sqlite3_stmt *st = store_prep(
	    ws, terminal ? "UPDATE jobs SET state = ?1, reason = ?1, "
	                   "ended_at = ?2 WHERE id = ?3"
	                 : "UPDATE jobs SET state = ?1, queued_at = ?2 "
	                   "WHERE id = ?3");
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, ws_now());
	sqlite3_bind_int64(st, 3, job);
	sqlite3_step(st);
	store_done(st);
}

/* For a rank of a multi-node job (docs/multi-node.md), ended with reason:
 * does this end decide the job?  A success waits for every rank of the
 * gang; the first rank to end any other way decides, and the gang's other
 * live ranks are told to stop (lease.c sends them a cancel, GANG_STOPPED);
 * a later rank's end changes nothing.  A first end `preempted` (a notice on
 * its node) decides once every rank ended: the others are told to stop
 * with reason `preempted`, so they checkpoint too (docs/checkpointing.md),
 * and however they end, the gang is requeued uncounted.  Returns
 * GANG_WAIT, GANG_DECIDES (by reason) or GANG_PREEMPTED. */
enum { GANG_WAIT, GANG_DECIDES, GANG_PREEMPTED };

static int gang_decides(struct ws *ws, int64_t job, int64_t gang,
                        int64_t attempt, const char *reason)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT count(*) FILTER (WHERE state IN ('assigned','running',"
	        "'cancelling')), (SELECT reason FROM attempts WHERE job = ?1 "
	        "AND attempt - rank = ?2 AND state NOT IN ('assigned',"
	        "'running','cancelling') AND reason != 'succeeded' AND "
	        "attempt != ?3 ORDER BY ended_at, attempt LIMIT 1) FROM "
	        "attempts WHERE job = ?1 AND attempt - rank = ?2");
	int64_t live = 0;
	bool earlier = false, preempting = strcmp(reason, "preempted") == 0;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, gang);
	sqlite3_bind_int64(st, 3, attempt);
	if (sqlite3_step(st) == SQLITE_ROW) {
		live = sqlite3_column_int64(st, 0);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
			earlier = true;
			preempting =
			    strcmp((const char *)sqlite3_column_text(st, 1),
			           "preempted") == 0;
		}
	}
	store_done(st);
	if (earlier && !preempting)
		return GANG_WAIT; /* an earlier rank decided */
	if (!earlier && strcmp(reason, "succeeded") == 0)
		return live == 0 ? GANG_DECIDES : GANG_WAIT;
	if (preempting && live == 0)
		return GANG_PREEMPTED; /* the last of a preempted gang */
	if (earlier)
		return GANG_WAIT; /* the others are told already */
	st = store_prep(ws, "SELECT agent_id FROM attempts WHERE job = ?1 AND "
	                    "attempt - rank = ?2 AND state IN ('assigned',"
	                    "'running','cancelling')");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, gang);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *ag = (const char *)sqlite3_column_text(st, 0);
		lease_agent_busy(ag);
		ws_notify_agent(ws, ag);
	}
	store_done(st);
	return preempting ? GANG_WAIT : GANG_DECIDES;
}

int sched_end_attempt(struct ws *ws, int64_t job, int64_t attempt,
                      const char *reason, bool counted)
{
	sqlite3_stmt *st;
	int64_t cur = 0, retries = 0, cancel = 0, gang = attempt, nodes = 1;
	char shown[80];
	bool again = strcmp(reason, "lost") == 0 ||
	             strcmp(reason, "preempted") == 0 || !counted;

	st = store_prep(ws, "UPDATE attempts SET state = ?1, reason = ?1, "
	                    "ended_at = ?2, counted = ?3 WHERE job = ?4 AND "
	                    "attempt = ?5");
	sqlite3_bind_text(st, 1, reason, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, ws_now());
	sqlite3_bind_int(st, 3, counted);
	sqlite3_bind_int64(st, 4, job);
	sqlite3_bind_int64(st, 5, attempt);
	sqlite3_step(st);
	store_done(st);
	st = store_prep(ws,
	                "SELECT attempt, retries, cancel_requested, (SELECT "
	                "?2 - rank FROM attempts WHERE job = ?1 AND attempt = "
	                "?2), coalesce(json_extract(spec, '$.nodes'), 1) FROM "
	                "jobs WHERE id = ?1");
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, attempt);
	if (sqlite3_step(st) == SQLITE_ROW) {
		cur = sqlite3_column_int64(st, 0);
		retries = sqlite3_column_int64(st, 1);
		cancel = sqlite3_column_int64(st, 2);
		gang = sqlite3_column_int64(st, 3);
		nodes = sqlite3_column_int64(st, 4);
	}
	store_done(st);
	if (cur != gang)
		return 0; /* superseded: the job has moved on */
	if (nodes > 1) {
		int d = gang_decides(ws, job, gang, attempt, reason);
		if (d == GANG_WAIT)
			return 0;
		if (d == GANG_PREEMPTED) { /* requeued, not counted */
			reason = "preempted";
			again = true;
			counted = false;
		}
	}
	if (cancel && again)
		set_job(ws, job, "cancelled", true);
	else if (again && (!counted || count_attempts(ws, job) < retries + 1))
		set_job(ws, job, "queued", false);
	else
		set_job(ws, job, reason, true);
	log_info("job=%lld attempt=%lld ended: %s", (long long)job,
	         (long long)attempt, str_escape(reason, shown, sizeof(shown)));
	return 0;
}

/* A gang whose rank its agent has not accepted (listed in a poll) within
 * gang_start_timeout: that rank is handed back (not counted), which ends
 * the gang (gang_decides: the others get a cancel, the job waits again),
 * and the job's gang_note names the agent.  store_lock held. */
static int gang_expire(struct ws *ws)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT a.job, a.attempt, a.rank, coalesce(ag.name, "
	        "a.agent_id) FROM attempts a JOIN jobs j ON j.id = a.job AND "
	        "j.attempt = a.attempt - a.rank LEFT JOIN agents ag ON ag.id = "
	        "a.agent_id WHERE a.state = 'assigned' AND a.accepted = 0 AND "
	        "a.started_at + ? < ? LIMIT 16");
	int64_t jobs[16], atts[16];
	char notes[16][200];
	int n = 0;

	sqlite3_bind_double(st, 1,
	                    (double)ws->conf.gang_start_timeout_ms / 1000.0);
	sqlite3_bind_double(st, 2, ws_now());
	while (n < 16 && sqlite3_step(st) == SQLITE_ROW) {
		jobs[n] = sqlite3_column_int64(st, 0);
		atts[n] = sqlite3_column_int64(st, 1);
		snprintf(notes[n++], sizeof(notes[0]),
		         "agent %.80s did not accept rank %lld within "
		         "gang_start_timeout",
		         sqlite3_column_text(st, 3),
		         (long long)sqlite3_column_int64(st, 2));
	}
	store_done(st);
	if (n == 0 || store_begin(ws) < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		log_warn("job=%lld attempt=%lld: %s", (long long)jobs[i],
		         (long long)atts[i], notes[i]);
		st = store_prep(ws,
		                "UPDATE jobs SET gang_note = ? WHERE id = ?");
		sqlite3_bind_text(st, 1, notes[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, jobs[i]);
		sqlite3_step(st);
		store_done(st);
		sched_end_attempt(ws, jobs[i], atts[i], "handed_back", false);
	}
	if (store_commit(ws) < 0) {
		store_rollback(ws);
		return 0;
	}
	return n;
}

int sched_expire(struct ws *ws)
{
	sqlite3_stmt *st;
	int gangs;
	int64_t jobs[64], atts[64];
	char agents[64][48];
	int n = 0;
	double slack =
	    (double)(ws->conf.lost_grace_ms + ws->conf.lost_margin_ms) / 1000.0;

	store_lock(ws);
	gangs = gang_expire(ws);
	st = store_prep(ws, "SELECT job, attempt, agent_id FROM attempts WHERE "
	                    "state IN ('assigned','running','cancelling') AND "
	                    "lease_deadline + ? < ? LIMIT 64");
	sqlite3_bind_double(st, 1, slack);
	sqlite3_bind_double(st, 2, ws_now());
	while (sqlite3_step(st) == SQLITE_ROW && n < 64) {
		jobs[n] = sqlite3_column_int64(st, 0);
		snprintf(agents[n], sizeof(agents[n]), "%s",
		         sqlite3_column_text(st, 2));
		atts[n++] = sqlite3_column_int64(st, 1);
	}
	store_done(st);
	if (n > 0 && store_begin(ws) == 0) {
		for (int i = 0; i < n; i++) {
			log_warn("job=%lld attempt=%lld lease lapsed",
			         (long long)jobs[i], (long long)atts[i]);
			sched_end_attempt(ws, jobs[i], atts[i], "lost", true);
		}
		if (store_commit(ws) < 0) {
			store_rollback(ws);
			n = 0;
		}
	}
	store_unlock(ws);
	/* a parked poll of that agent (partitioned, not dead) hears it now */
	for (int i = 0; i < n; i++)
		ws_notify_agent(ws, agents[i]);
	return n + gangs;
}

void sched_clock_check(struct ws *ws)
{
	double now = ws_now() - (double)now_mono_ms() / 1000.0, step;
	sqlite3_stmt *st;

	step = ws->clock_known ? now - ws->clock_offset : 0;
	ws->clock_offset = now; /* slow drift (NTP slewing) never adds up */
	ws->clock_known = true;
	if (step > -1.0 && step < 1.0)
		return;
	log_warn("the wall clock stepped %+.1f s: shifting lease deadlines "
	         "and last-seen times with it",
	         step);
	lease_hb_flush(ws); /* then shift those too */
	st = store_prep(ws,
	                "UPDATE attempts SET lease_deadline = lease_deadline "
	                "+ ?1 WHERE state IN ('assigned','running',"
	                "'cancelling')");
	sqlite3_bind_double(st, 1, step);
	if (sqlite3_step(st) != SQLITE_DONE)
		log_error("shift lease deadlines: %s", sqlite3_errmsg(ws->db));
	store_done(st);
	st =
	    store_prep(ws, "UPDATE agents SET last_seen = last_seen + ?1 WHERE "
	                   "last_seen IS NOT NULL");
	sqlite3_bind_double(st, 1, step);
	if (sqlite3_step(st) != SQLITE_DONE)
		log_error("shift last-seen times: %s", sqlite3_errmsg(ws->db));
	store_done(st);
}

struct agent_fit {
	char id[48];
	const char *name;
	json_t *labels, *cap;
	int refs; /* a kept fit (keep_fit, sched_fit_load): its holders */
};

static bool has_label(json_t *labels, const char *l)
{
	size_t i;
	json_t *v;

	json_array_foreach(labels, i, v) if (json_is_string(v) &&
	                                     strcmp(json_string_value(v), l) ==
	                                         0) return true;
	return false;
}

/* Does the job go to Slurm on this agent (its launcher, or the agent's
 * default_launcher when it names none)?  Only an agent that reports
 * partitions can say. */
static bool to_slurm(const struct agent_fit *a, const char *launcher)
{
	json_t *sl = json_object_get(a->cap, "slurm");
	const char *def =
	    json_string_value(json_object_get(sl, "default_launcher"));

	if (!json_is_array(json_object_get(sl, "partitions")))
		return false;
	if (launcher != NULL && strcmp(launcher, "default") != 0)
		return strcmp(launcher, "slurm") == 0;
	return def != NULL && strcmp(def, "slurm") == 0;
}

/* A partition count: the largest node's (node_*), else the total. */
static int64_t part_num(json_t *p, const char *node_key, const char *key)
{
	json_t *v = json_object_get(p, node_key);

	return json_integer_value(v ? v : json_object_get(p, key));
}

/* Why no partition the job may go to could ever hold it (one node's
 * CPUs, memory and GPUs), or NULL.  The partition is the spec's, else a
 * default one, else any. */
static const char *no_fit_slurm(const struct agent_fit *a, const char *part,
                                double cpus, int64_t mem, int64_t gpus)
{
	json_t *parts =
	    json_object_get(json_object_get(a->cap, "slurm"), "partitions");
	const char *why = part != NULL ? "slurm.partition" : "cpus";
	bool any_default = false;
	size_t i;
	json_t *p;

	json_array_foreach(parts, i, p) any_default =
	    any_default || json_is_true(json_object_get(p, "default"));
	json_array_foreach(parts, i, p)
	{
		const char *name =
		    json_string_value(json_object_get(p, "name"));
		if (part != NULL
		        ? name == NULL || strcmp(name, part) != 0
		        : any_default &&
		              !json_is_true(json_object_get(p, "default")))
			continue;
		if (cpus > (double)part_num(p, "node_cpus", "cpus"))
			why = "cpus";
		else if (mem > part_num(p, "node_memory", "memory"))
			why = "memory";
		else if (gpus > part_num(p, "node_gpus", "gpus"))
			why = "gpus";
		else
			return NULL;
	}
	return why;
}

/* What a job needs of an agent: columns from col of a row with placement
 * agent, labels, cpus, memory, gpus, launcher, Slurm partition (the
 * strings point into the row; need_free drops the labels). */
struct job_need {
	const char *pa, *launcher, *part;
	json_t *pl;
	double cpus;
	int64_t mem, gpus;
};

static void need_of(sqlite3_stmt *job, int col, struct job_need *n)
{
	n->pa = (const char *)sqlite3_column_text(job, col);
	n->pl = store_col_json(job, col + 1);
	n->cpus = sqlite3_column_double(job, col + 2);
	n->mem = sqlite3_column_int64(job, col + 3);
	n->gpus = sqlite3_column_int64(job, col + 4);
	n->launcher = (const char *)sqlite3_column_text(job, col + 5);
	n->part = (const char *)sqlite3_column_text(job, col + 6);
}

/* Why the agent could never run the job, or NULL when it could. */
static const char *no_fit_need(const struct agent_fit *a,
                               const struct job_need *n)
{
	json_t *v;
	size_t i;

	if (n->pa != NULL && strcmp(n->pa, a->name) != 0 &&
	    strcmp(n->pa, a->id) != 0)
		return "placement";
	json_array_foreach(
	    n->pl, i,
	    v) if (json_is_string(v) &&
	           !has_label(a->labels, json_string_value(v))) return "labels";
	if (to_slurm(a, n->launcher))
		return no_fit_slurm(a, n->part, n->cpus, n->mem, n->gpus);
	if (n->cpus > 0 &&
	    n->cpus > json_number_value(json_object_get(a->cap, "cpus")))
		return "cpus";
	if (n->mem > 0 &&
	    n->mem > json_integer_value(json_object_get(a->cap, "memory")))
		return "memory";
	if (n->gpus > 0 &&
	    (size_t)n->gpus > json_array_size(json_object_get(a->cap, "gpus")))
		return "gpus";
	return NULL;
}

/* no_fit_need for the job in the row st (columns from col, see need_of). */
static const char *no_fit(const struct agent_fit *a, sqlite3_stmt *job, int col)
{
	struct job_need n;
	const char *why;

	need_of(job, col, &n);
	why = no_fit_need(a, &n);
	json_decref(n.pl);
	return why;
}

/* The full spec of a job with its secrets put back. */
static json_t *full_spec(struct ws *ws, int64_t job, json_t *masked)
{
	sqlite3_stmt *st = store_prep(ws, "SELECT name, value FROM job_secrets "
	                                  "WHERE job = ?");
	json_t *sec = json_object();

	sqlite3_bind_int64(st, 1, job);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_object_set_new(
		    sec, (const char *)sqlite3_column_text(st, 0),
		    json_string((const char *)sqlite3_column_text(st, 1)));
	store_done(st);
	if (json_object_size(sec) > 0)
		json_object_set_new(masked, "secrets", sec);
	else
		json_decref(sec);
	return masked;
}

/* Attempt n of job, rank `rank` of its gang (0 for a one-node job), given
 * to agent; a gang's rank waits to be accepted (gang_expire). */
static void new_attempt(struct ws *ws, const char *agent, int64_t job,
                        int64_t n, int64_t rank, bool gang)
{
	sqlite3_stmt *st = store_prep(
	    ws, "INSERT INTO attempts(job, attempt, agent_id, state, "
	        "started_at, lease_deadline, durations, rank, accepted) VALUES "
	        "(?1, ?2, ?3, 'assigned', ?4, ?5, json_object('queued', ?4 - "
	        "(SELECT queued_at FROM jobs WHERE id = ?1)), ?6, ?7)");
	double now = ws_now();

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, n);
	sqlite3_bind_text(st, 3, agent, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, now);
	sqlite3_bind_double(st, 5,
	                    now + (double)ws->conf.lease_ttl_ms / 1000.0);
	sqlite3_bind_int64(st, 6, rank);
	sqlite3_bind_int(st, 7, !gang);
	sqlite3_step(st);
	store_done(st);
	lease_agent_busy(agent); /* its polls check the database again */
	st = store_prep(ws, "UPDATE jobs SET state = 'assigned', attempt = ? "
	                    "WHERE id = ?");
	sqlite3_bind_int64(st, 1, n - rank);
	sqlite3_bind_int64(st, 2, job);
	sqlite3_step(st);
	store_done(st);
}

static int load_agent(struct ws *ws, const char *id, struct agent_fit *a,
                      sqlite3_stmt **keep)
{
	sqlite3_stmt *st = store_prep(ws, "SELECT name, labels, capacity FROM "
	                                  "agents WHERE id = ?");

	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_ROW) {
		store_done(st);
		return -1;
	}
	snprintf(a->id, sizeof(a->id), "%s", id);
	a->name = (const char *)sqlite3_column_text(st, 0);
	a->labels = store_col_json(st, 1);
	a->cap = store_col_json(st, 2);
	*keep = st;
	return 0;
}

/* The lease item handing attempt n (of rank `rank`) of job id (spec and
 * snapshot are the columns spec_col and spec_col + 1 of st).  A rank of a
 * multi-node job also carries `rank` and `nodes` (docs/protocol.md). */
static json_t *lease_item(struct ws *ws, int64_t id, int64_t n,
                          sqlite3_stmt *st, int spec_col, int64_t rank)
{
	json_t *spec = full_spec(ws, id, store_col_json(st, spec_col));
	json_int_t nodes = json_integer_value(json_object_get(spec, "nodes"));
	json_t *it =
	    json_pack("{s:I,s:I,s:o,s:f,s:o,s:o}", "job", (json_int_t)id,
	              "attempt", (json_int_t)n, "spec", spec, "lease_ttl",
	              (double)ws->conf.lease_ttl_ms / 1000.0, "snapshot",
	              store_col_str(st, spec_col + 1), "checkpoint",
	              checkpoint_of_job(ws, id));

	if (nodes > 1) {
		json_object_set_new(it, "rank", json_integer(rank));
		json_object_set_new(it, "nodes", json_integer(nodes));
	}
	return it;
}

static bool listed(json_t *running, int64_t job, int64_t attempt)
{
	json_t *it;
	size_t i;

	json_array_foreach(running, i, it)
	{
		if (json_integer_value(json_object_get(it, "job")) == job &&
		    json_integer_value(json_object_get(it, "attempt")) ==
		        attempt)
			return true;
	}
	return false;
}

int sched_reoffer(struct ws *ws, const char *agent_id, int64_t room,
                  json_t *running, json_t *jobs)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT j.id, a.attempt, j.spec, j.snapshot, a.rank FROM "
	        "attempts a JOIN jobs j ON j.id = a.job AND j.attempt = "
	        "a.attempt - a.rank WHERE "
	        "a.agent_id = ? AND a.state = 'assigned' AND j.state = "
	        "'assigned' AND j.cancel_requested = 0 ORDER BY j.priority "
	        "DESC, j.id ASC");
	int given = 0;

	sqlite3_bind_text(st, 1, agent_id, -1, SQLITE_STATIC);
	while (given < room && sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t n = sqlite3_column_int64(st, 1);

		if (listed(running, id, n))
			continue;
		json_array_append_new(
		    jobs,
		    lease_item(ws, id, n, st, 2, sqlite3_column_int64(st, 4)));
		log_info("job=%lld attempt=%lld offered again to %s (the "
		         "agent's poll did not list it)",
		         (long long)id, (long long)n, agent_id);
		given++;
	}
	store_done(st);
	return given;
}

int sched_handback_unheld(struct ws *ws, const char *agent_id, json_t *running,
                          bool all)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT a.job, a.attempt FROM attempts a JOIN jobs j ON j.id "
	        "= a.job AND j.attempt = a.attempt - a.rank WHERE a.agent_id "
	        "= ? AND "
	        "a.state = 'assigned' LIMIT 1000");
	int64_t jobs[1000], atts[1000];
	int n = 0;

	sqlite3_bind_text(st, 1, agent_id, -1, SQLITE_STATIC);
	while (n < 1000 && sqlite3_step(st) == SQLITE_ROW) {
		jobs[n] = sqlite3_column_int64(st, 0);
		atts[n] = sqlite3_column_int64(st, 1);
		if (all || !listed(running, jobs[n], atts[n]))
			n++;
	}
	store_done(st);
	for (int i = 0; i < n; i++) {
		log_info("job=%lld attempt=%lld handed back for %s (it %s)",
		         (long long)jobs[i], (long long)atts[i], agent_id,
		         all ? "exits" : "drains and does not hold it");
		sched_end_attempt(ws, jobs[i], atts[i], "handed_back", false);
	}
	return n;
}

void sched_fit_free(struct agent_fit *f)
{
	if (f == NULL || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	free((char *)f->name);
	json_decref(f->labels);
	json_decref(f->cap);
	free(f);
}

/* A copy of a for a parked poll (*keep, replacing what it held). */
static void keep_fit(const struct agent_fit *a, struct agent_fit **keep)
{
	struct agent_fit *k = xcalloc(1, sizeof(*k));

	memcpy(k->id, a->id, sizeof(k->id));
	k->name = xstrdup(a->name ? a->name : "");
	k->labels = json_incref(a->labels);
	k->cap = json_incref(a->cap);
	k->refs = 1;
	sched_fit_free(*keep);
	*keep = k;
}

struct agent_fit *sched_fit_ref(struct agent_fit *f)
{
	if (f != NULL)
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	return f;
}

struct agent_fit *sched_fit_load(struct ws *ws, const char *agent_id)
{
	struct agent_fit a, *k = NULL;
	sqlite3_stmt *ag;

	if (load_agent(ws, agent_id, &a, &ag) < 0)
		return NULL;
	keep_fit(&a, &k);
	json_decref(a.labels);
	json_decref(a.cap);
	store_done(ag);
	return k;
}

/* A job of one node: a multi-node job (nodes > 1) goes only to a gang of
 * agents at once (gang_assign, docs/multi-node.md), never to one agent's
 * poll as an ordinary job. */
#define ONE_NODE "coalesce(json_extract(spec, '$.nodes'), 1) = 1"
#define GANG_MAX 256

static bool fits_need(const struct agent_fit *a, void *need);

static int cmp_id(const void *x, const void *y)
{
	return strcmp(x, y);
}

/* Other agents that can take a rank of the job now (a parked poll with
 * room, not draining), sorted by id (one global order: two gangs never
 * wait on each other's agents); how many, at most GANG_MAX - 1. */
static int gang_candidates(struct ws *ws, const char *self, struct job_need *n,
                           char (*ids)[48])
{
	int k = wait_parked_fitting(ws, fits_need, n, ids, GANG_MAX - 1), m = 0;

	qsort(ids, (size_t)k, sizeof(*ids), cmp_id);
	for (int i = 0; i < k; i++) {
		sqlite3_stmt *st = store_prep(ws, "SELECT 1 FROM agents WHERE "
		                                  "id = ? AND drain = 0 AND "
		                                  "state != 'revoked'");
		bool ok;
		sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_ROW && strcmp(ids[i], self) &&
		     (m == 0 || strcmp(ids[i], ids[m - 1]));
		store_done(st);
		if (ok)
			memmove(ids[m++], ids[i], sizeof(*ids));
	}
	return m;
}

/* Gang reservation (docs/multi-node.md): the first queued multi-node job
 * that this polling agent fits and that has enough other agents with a
 * free slot now gets all its ranks at once, in the caller's transaction:
 * rank 0 here (an item in jobs), rank r to the r-th other agent by id,
 * woken to take it (sched_reoffer); attempts g … g + N - 1.  How many
 * items were added (0 or 1). */
static int gang_assign(struct ws *ws, const struct agent_fit *a, json_t *jobs)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT id, spec, snapshot, placement_agent, placement_labels, "
	        "cpus, memory, gpus, json_extract(spec, '$.launcher'), "
	        "json_extract(spec, '$.slurm.partition'), json_extract(spec, "
	        "'$.nodes'), (SELECT coalesce(max(attempt), 0) FROM attempts "
	        "WHERE job = jobs.id) FROM jobs WHERE state = 'queued' AND "
	        "cancel_requested = 0 AND NOT " ONE_NODE " ORDER BY priority "
	        "DESC, id ASC");
	char(*ids)[48] = xcalloc(GANG_MAX, sizeof(*ids));
	int64_t job = 0, g = 0, nodes = 0;
	json_t *item = NULL;

	while (item == NULL && sqlite3_step(st) == SQLITE_ROW) {
		struct job_need n;
		int k = -1;
		need_of(st, 3, &n);
		nodes = sqlite3_column_int64(st, 10);
		if (no_fit_need(a, &n) == NULL)
			k = gang_candidates(ws, a->id, &n, ids);
		json_decref(n.pl);
		if (k < nodes - 1)
			continue;
		job = sqlite3_column_int64(st, 0);
		g = sqlite3_column_int64(st, 11) + 1;
		item = lease_item(ws, job, g, st, 1, 0);
	}
	store_done(st);
	if (item != NULL) {
		new_attempt(ws, a->id, job, g, 0, true);
		for (int64_t r = 1; r < nodes; r++) {
			new_attempt(ws, ids[r - 1], job, g + r, r, true);
			wait_parked_take(ws, ids[r - 1]);
			ws_notify_agent(ws, ids[r - 1]);
		}
		st = store_prep(ws, "UPDATE jobs SET gang_note = NULL WHERE "
		                    "id = ?");
		sqlite3_bind_int64(st, 1, job);
		sqlite3_step(st);
		store_done(st);
		json_array_append_new(jobs, item);
		log_info("job=%lld attempts %lld-%lld: a gang of %lld, rank 0 "
		         "on %s",
		         (long long)job, (long long)g,
		         (long long)(g + nodes - 1), (long long)nodes, a->name);
	}
	free(ids);
	return item != NULL;
}

int sched_assign_gang(struct ws *ws, const char *agent_id, int64_t slots,
                      json_t *jobs)
{
	struct agent_fit a;
	sqlite3_stmt *ag;
	int given;

	if (slots <= 0 || load_agent(ws, agent_id, &a, &ag) < 0)
		return 0;
	given = gang_assign(ws, &a, jobs);
	json_decref(a.labels);
	json_decref(a.cap);
	store_done(ag);
	return given;
}

int sched_assign(struct ws *ws, const char *agent_id, int64_t room,
                 json_t *jobs, struct agent_fit **keep)
{
	struct agent_fit a;
	sqlite3_stmt *ag, *st;
	int given = 0;

	if (room <= 0 || load_agent(ws, agent_id, &a, &ag) < 0)
		return 0;
	if (keep != NULL)
		keep_fit(&a, keep);
	st = store_prep(ws,
	                "SELECT id, attempt, spec, snapshot, placement_agent,"
	                " placement_labels, cpus, memory, gpus, "
	                "json_extract(spec, '$.launcher'), json_extract(spec, "
	                "'$.slurm.partition') FROM jobs WHERE state = 'queued' "
	                "AND cancel_requested = 0 AND " ONE_NODE " ORDER BY "
	                "priority DESC, id ASC");
	/* the whole queue, until room is filled: a bound here starved a job
	 * behind that many others this agent cannot run (GPU jobs before a
	 * CPU one on a CPU node) */
	while (given < room && sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t n = sqlite3_column_int64(st, 1) + 1;
		if (no_fit(&a, st, 4) != NULL)
			continue;
		json_array_append_new(jobs, lease_item(ws, id, n, st, 2, 0));
		given++;
	}
	store_done(st);
	/* create the attempts after the read cursor is closed */
	for (size_t i = json_array_size(jobs) - (size_t)given;
	     i < json_array_size(jobs); i++) {
		json_t *it = json_array_get(jobs, i);
		new_attempt(ws, agent_id,
		            json_integer_value(json_object_get(it, "job")),
		            json_integer_value(json_object_get(it, "attempt")),
		            0, false);
		log_info(
		    "job=%lld attempt=%lld leased to %s",
		    (long long)json_integer_value(json_object_get(it, "job")),
		    (long long)json_integer_value(
		        json_object_get(it, "attempt")),
		    a.name);
	}
	json_decref(a.labels);
	json_decref(a.cap);
	store_done(ag);
	return given;
}

/* How many parked polls one queued job wakes: more than one, as a woken
 * poll may belong to an agent that died (it answers 401) or take another
 * job first; the sweeper offers what is left again every second. */
#define WAKE_PER_JOB 4
#define WAKE_JOBS    32

static bool fits_need(const struct agent_fit *a, void *need)
{
	return no_fit_need(a, need) == NULL;
}

int sched_wake_queued(struct ws *ws)
{
	sqlite3_stmt *js;
	int woken = 0;

	store_lock(ws);
	js = store_prep(ws, "SELECT placement_agent, placement_labels, cpus, "
	                    "memory, gpus, json_extract(spec, '$.launcher'), "
	                    "json_extract(spec, '$.slurm.partition'), " ONE_NODE
	                    " FROM jobs WHERE state = 'queued' AND "
	                    "cancel_requested = 0 ORDER BY priority DESC, id "
	                    "ASC LIMIT ?");
	sqlite3_bind_int(js, 1, WAKE_JOBS);
	/* the parked polls keep their agent's fit (sched_assign): matching
	 * them queries nothing per agent */
	while (sqlite3_step(js) == SQLITE_ROW) {
		struct job_need n;
		need_of(js, 0, &n);
		/* a gang: one poll with a slot free now, which finds the
		 * others still parked (gang_assign) */
		woken += wait_wake_fitting(
		    ws, fits_need, &n,
		    sqlite3_column_int(js, 7) ? WAKE_PER_JOB : 1,
		    !sqlite3_column_int(js, 7));
		json_decref(n.pl);
	}
	store_done(js);
	store_unlock(ws);
	return woken;
}

/* Why the queued multi-node job in js (columns as in sched_queue_reason)
 * waits: fewer registered agents could ever run a rank than it has nodes
 * (unschedulable), or gang reservation, which is not built yet. */
static char *gang_reason(struct ws *ws, sqlite3_stmt *js, int64_t job,
                         int64_t nodes)
{
	sqlite3_stmt *st;
	char *out;
	sqlite3_stmt *as = store_prep(ws, "SELECT id, name, labels, capacity "
	                                  "FROM agents WHERE state != "
	                                  "'revoked'");
	struct agent_fit a;
	int64_t fit = 0;

	while (sqlite3_step(as) == SQLITE_ROW) {
		snprintf(a.id, sizeof(a.id), "%s", sqlite3_column_text(as, 0));
		a.name = (const char *)sqlite3_column_text(as, 1);
		a.labels = store_col_json(as, 2);
		a.cap = store_col_json(as, 3);
		fit += no_fit(&a, js, 0) == NULL;
		json_decref(a.labels);
		json_decref(a.cap);
	}
	store_done(as);
	if (fit < nodes)
		return xasprintf("unschedulable: the job needs %lld nodes and "
		                 "%lld registered agent%s match its placement "
		                 "and resources",
		                 (long long)nodes, (long long)fit,
		                 fit == 1 ? "" : "s");
	st = store_prep(ws, "SELECT gang_note FROM jobs WHERE id = ?");
	sqlite3_bind_int64(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0) != NULL)
		out = xasprintf("waiting: %s", sqlite3_column_text(st, 0));
	else
		out = xasprintf("waiting: for %lld matching agents with a free "
		                "slot at once",
		                (long long)nodes);
	store_done(st);
	return out;
}

char *sched_queue_reason(struct ws *ws, int64_t job)
{
	sqlite3_stmt *js, *as;
	struct agent_fit a;
	const char *why = NULL;
	char *out = NULL;
	int nagents = 0;
	int64_t nodes;

	js = store_prep(ws, "SELECT placement_agent, placement_labels, cpus, "
	                    "memory, gpus, json_extract(spec, '$.launcher'), "
	                    "json_extract(spec, '$.slurm.partition'), "
	                    "coalesce(json_extract(spec, '$.nodes'), 1) FROM "
	                    "jobs WHERE id = ? AND state = 'queued'");
	sqlite3_bind_int64(js, 1, job);
	if (sqlite3_step(js) != SQLITE_ROW)
		goto out;
	if ((nodes = sqlite3_column_int64(js, 7)) > 1) {
		out = gang_reason(ws, js, job, nodes);
		goto out;
	}
	as = store_prep(ws,
	                "SELECT id, name, labels, capacity FROM agents WHERE "
	                "state != 'revoked'");
	while (sqlite3_step(as) == SQLITE_ROW) {
		const char *w;
		snprintf(a.id, sizeof(a.id), "%s", sqlite3_column_text(as, 0));
		a.name = (const char *)sqlite3_column_text(as, 1);
		a.labels = store_col_json(as, 2);
		a.cap = store_col_json(as, 3);
		w = no_fit(&a, js, 0);
		json_decref(a.labels);
		json_decref(a.cap);
		nagents++;
		if (w == NULL) {
			why = NULL;
			break;
		}
		why = w;
	}
	store_done(as);
	if (nagents == 0)
		out = xstrdup("unschedulable: no agent is registered");
	else if (why != NULL)
		out = xasprintf("unschedulable: no registered agent matches "
		                "the job's %s%s",
		                why,
		                strcmp(why, "placement") &&
		                        strcmp(why, "labels") &&
		                        strcmp(why, "slurm.partition")
		                    ? " request (too large for every agent)"
		                    : "");
out:
	store_done(js);
	return out;
}

int sched_attempt_check(struct ws *ws, int64_t job, int64_t attempt,
                        const char *agent_id)
{
	sqlite3_stmt *st = store_prep(
	    ws, "SELECT a.agent_id = ?3, a.state IN ('assigned','running',"
	        "'cancelling') AND j.attempt = a.attempt - a.rank FROM "
	        "attempts a JOIN "
	        "jobs j ON j.id = a.job WHERE a.job = ?1 AND a.attempt = ?2");
	int r = TERR_NOTFOUND;

	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, attempt);
	sqlite3_bind_text(st, 3, agent_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0))
		r = sqlite3_column_int(st, 1) ? 0 : TERR_CONFLICT;
	store_done(st);
	return r;
}
