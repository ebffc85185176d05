/* queue.c: the durable local queue.  Jobs wait in agent.db by priority
 * (higher first), then FIFO, until CPUs, memory, GPUs and a slot are free.
 * Scheduling is strict: a waiting job is never overtaken by a smaller one
 * behind it, so priority order holds. */
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/harden.h"
#include "agent/lifecycle.h"

#include "common/jobspec.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

char *queue_too_big(const struct agent *a, double cpus, int64_t memory,
                    int64_t gpus)
{
	if (cpus > a->cap.cpus)
		return xasprintf("needs %g CPUs, this node offers %g", cpus,
		                 a->cap.cpus);
	if (memory > a->cap.memory)
		return xasprintf("needs %lld bytes of memory, this node offers "
		                 "%lld",
		                 (long long)memory, (long long)a->cap.memory);
	if (gpus > a->cap.ngpus)
		return xasprintf("needs %lld GPUs, this node offers %d",
		                 (long long)gpus, a->cap.ngpus);
	return NULL;
}

char *queue_disk_too_big(const struct agent_conf *c, int64_t disk)
{
	int64_t max = 0;

	agent_conf_disk(c->attempt_max_disk, c->state_dir, "attempt_max_disk",
	                &max, NULL);
	if (disk <= 0 || max <= 0 || disk <= max)
		return NULL;
	return xasprintf("resources.disk: %lld bytes is more than this agent "
	                 "allows (attempt_max_disk, %lld bytes)",
	                 (long long)disk, (long long)max);
}

bool queue_to_slurm(const struct agent *a, const struct jobspec *s)
{
	return s != NULL && (s->launcher == LAUNCHER_SLURM ||
	                     (s->launcher == LAUNCHER_DEFAULT &&
	                      a->conf.default_launcher != NULL &&
	                      strcmp(a->conf.default_launcher, "slurm") == 0));
}

char *queue_too_big_spec(const struct agent *a, const struct jobspec *s)
{
	if (queue_to_slurm(a, s))
		return NULL; /* Slurm places it (sbatch refuses what never fits)
		              */
	return queue_too_big(a, s->resources.cpus, s->resources.memory,
	                     s->resources.gpus);
}

static int64_t queue_next_fifo(sqlite3 *db)
{
	sqlite3_stmt *st;
	int64_t v = 1;

	if (sqlite3_prepare_v2(db,
	                       "SELECT COALESCE(MAX(fifo), 0) + 1 FROM "
	                       "attempts",
	                       -1, &st, NULL) != SQLITE_OK)
		return 1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Insert one attempt row; the caller holds the transaction. */
static int queue_insert(sqlite3 *db, const char *job, int64_t attempt,
                        const char *origin, const char *state, const char *spec,
                        const char *snapshot, int64_t priority, double cpus,
                        int64_t memory, int64_t gpus, int64_t ttl_ms,
                        int64_t lease_mono, int64_t fifo, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(db,
	                    "INSERT OR IGNORE INTO attempts(job, attempt, "
	                    "origin, state, priority, fifo, spec, snapshot, "
	                    "cpus, memory, gpus, lease_ttl_ms, lease_mono_ms, "
	                    "created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, attempt);
	sqlite3_bind_text(st, 3, origin, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, priority);
	sqlite3_bind_int64(st, 6, fifo);
	sqlite3_bind_text(st, 7, spec, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, snapshot, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 9, cpus);
	sqlite3_bind_int64(st, 10, memory);
	sqlite3_bind_int64(st, 11, gpus);
	sqlite3_bind_int64(st, 12, ttl_ms);
	sqlite3_bind_int64(st, 13, lease_mono);
	sqlite3_bind_double(st, 14, (double)now_wall_ms() / 1000.0);
	return db_step_done(db, st, e);
}

static void queue_fill_att(struct agent *a, struct att *t,
                           const struct jobspec *s)
{
	/* a Slurm job uses none of the head node's own CPUs, memory or
	 * GPUs: only max_jobs bounds how many the node follows at once */
	bool here = s != NULL && !queue_to_slurm(a, s);

	t->priority = s ? s->priority : 0;
	t->rank = s != NULL && s->nodes > 1;
	t->cpus = here ? s->resources.cpus : 0;
	t->memory = here ? s->resources.memory : 0;
	t->gpus = here ? s->resources.gpus : 0;
	t->dir = xasprintf("%s/jobs/%s/%lld", a->conf.state_dir, t->job,
	                   (long long)t->attempt);
}

static bool queue_snapshot_id_ok(const char *id)
{
	size_t n = strspn(id, "0123456789abcdef");

	return n == 64 && id[n] == '\0';
}

int queue_add_leased(struct agent *a, json_t *job, int64_t now_mono,
                     struct err *e)
{
	json_t *jid = json_object_get(job, "job"), *spec_j;
	int64_t attempt = json_integer_value(json_object_get(job, "attempt"));
	int64_t ttl_ms = harden_ttl_ms(json_object_get(job, "lease_ttl"));
	const char *snap = json_string_value(json_object_get(job, "snapshot"));
	struct jobspec *s = NULL;
	struct err pe = {0};
	char id[64], *spec = NULL, *why = NULL;
	struct att *t;
	int r;

	if (!json_is_integer(jid) || attempt < 1)
		return err_set(e, TERR_PROTO, "lease reply: job without id");
	if (ttl_ms < 0)
		return err_set(e, TERR_PROTO,
		               "lease reply: job without a valid lease_ttl");
	snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(jid));
	if (att_find(a, id, attempt) != NULL)
		return 0;
	spec_j = json_object_get(job, "spec");
	spec = json_dumps(spec_j ? spec_j : json_null(), JSON_COMPACT);
	if (jobspec_parse_json(spec_j, &s, &pe) < 0)
		why = xasprintf("job spec: %s", pe.msg);
	else if (snap != NULL && !queue_snapshot_id_ok(snap))
		why = xasprintf("snapshot id '%.80s' is not a sha256", snap);
	else if ((why = queue_too_big_spec(a, s)) == NULL)
		why = queue_disk_too_big(&a->conf, s->resources.disk);
	t = att_new(a, id, attempt);
	queue_fill_att(a, t, s);
	t->outputs_none = s != NULL && !s->outputs_all &&
	                  json_integer_value(json_object_get(job, "rank")) > 0;
	t->snapshot = snap ? xstrdup(snap) : NULL;
	t->lease_ttl_ms = ttl_ms;
	t->lease_mono_ms = now_mono + t->lease_ttl_ms;
	t->fifo = queue_next_fifo(a->db);
	r = queue_insert(a->db, id, attempt, "workspace", "queued", spec, snap,
	                 t->priority, t->cpus, t->memory, t->gpus,
	                 t->lease_ttl_ms, t->lease_mono_ms, t->fifo, e);
	if (r < 0 || sqlite3_changes(a->db) == 0) {
		/* an error, or an attempt this node already had (re-sent) */
		if (r < 0) /* not recorded: give it back, never drop it */
			harden_handback(a, id, attempt, e->msg);
		att_remove(a, t);
		goto out;
	}
	log_info("job=%s attempt=%lld accepted (priority %lld)", id,
	         (long long)attempt, (long long)t->priority);
	if (why != NULL) {
		log_warn("job=%s refused: %s", id, why);
		r = att_final_event(t, "launch_failed", why, e);
	} else {
		checkpoint_note_lease(t, job);
	}
out:
	free(why);
	free(spec);
	jobspec_free(s);
	return r;
}

int queue_submit_local(sqlite3 *db, const char *spec_text, double cpus,
                       int64_t memory, int64_t gpus, int64_t priority,
                       char **job_out, struct err *e)
{
	char *seq = NULL, *id = NULL, num[32];
	int64_t n = 0;
	int r;

	if ((r = db_begin(db, e)) < 0)
		return r;
	if ((r = db_meta_get(db, "local_seq", &seq, e)) < 0)
		goto fail;
	if (seq != NULL && parse_i64(seq, 0, INT64_MAX - 1, &n, NULL) < 0)
		n = 0;
	n++;
	snprintf(num, sizeof(num), "%lld", (long long)n);
	id = xasprintf("L%lld", (long long)n);
	if ((r = db_meta_set(db, "local_seq", num, e)) < 0 ||
	    (r = queue_insert(db, id, 1, "local", "queued", spec_text, NULL,
	                      priority, cpus, memory, gpus, 0, 0,
	                      queue_next_fifo(db), e)) < 0 ||
	    (r = db_commit(db, e)) < 0)
		goto fail;
	free(seq);
	*job_out = id;
	return 0;
fail:
	db_rollback(db);
	free(seq);
	free(id);
	return r;
}

/* GPUs not held by a running attempt, as a bit set. */
static uint64_t queue_free_gpus(struct agent *a)
{
	uint64_t mask = a->cap.ngpus >= 64 ? ~0ULL : (1ULL << a->cap.ngpus) - 1;

	for (struct att *t = a->atts; t != NULL; t = t->next) {
		json_t *ids;
		size_t i;
		json_t *v;
		if ((t->state != ATT_RUNNING && !t->preparing) ||
		    t->gpu_ids == NULL)
			continue;
		ids = json_loads(t->gpu_ids, 0, NULL);
		json_array_foreach(ids, i, v) mask &=
		    ~(1ULL << (json_integer_value(v) & 63));
		json_decref(ids);
	}
	return mask;
}

static bool queue_fits(struct agent *a, struct att *t)
{
	double cpus = 0;
	int64_t mem = 0, n = 0;
	uint64_t gpus = queue_free_gpus(a);

	for (struct att *o = a->atts; o != NULL; o = o->next) {
		if (o->state != ATT_RUNNING && !o->preparing)
			continue;
		n++;
		cpus += o->cpus;
		mem += o->memory;
	}
	return n < a->conf.max_jobs && cpus + t->cpus <= a->cap.cpus + 1e-9 &&
	       mem + t->memory <= a->cap.memory &&
	       __builtin_popcountll(gpus) >= t->gpus;
}

static void queue_assign_gpus(struct agent *a, struct att *t)
{
	uint64_t free_mask = queue_free_gpus(a);
	json_t *ids = json_array();

	for (int i = 0; i < 64 && (int64_t)json_array_size(ids) < t->gpus; i++)
		if (free_mask & (1ULL << i))
			json_array_append_new(ids, json_integer(i));
	free(t->gpu_ids);
	t->gpu_ids = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
}

/* A queued job the node can no longer ever run (it shrank: capacity
 * settings changed across a restart) ends now, with the reason. */
static bool queue_refuse_if_too_big(struct agent *a, struct att *t)
{
	char *why = queue_too_big(a, t->cpus, t->memory, t->gpus);
	struct err e = {0};

	if (why == NULL)
		return false;
	log_warn("job=%s refused: %s", t->job, why);
	if (att_final_event(t, "launch_failed", why, &e) < 0) {
		log_error("job=%s: %s", t->job, e.msg);
		att_request(t, ATT_EV_GIVE_UP, &e); /* never pick it again */
	}
	free(why);
	return true;
}

void queue_schedule(struct agent *a)
{
	for (;;) {
		struct att *best = NULL;

		for (struct att *t = a->atts; t != NULL; t = t->next) {
			if (t->state != ATT_QUEUED || t->preparing)
				continue;
			/* After a restart, wait for the renewal of a lease
			 * that may have lapsed meanwhile. */
			if (!t->local && t->lease_mono_ms <= now_mono_ms())
				continue;
			/* a rank of a multi-node job first: the workspace
			 * gave it for a slot free now, and its gang waits
			 * for it at the start barrier (docs/multi-node.md) */
			if (best == NULL || (t->rank && !best->rank) ||
			    (t->rank == best->rank &&
			     (t->priority > best->priority ||
			      (t->priority == best->priority &&
			       t->fifo < best->fifo))))
				best = t;
		}
		if (best == NULL || a->draining || harden_disk_low(a))
			return;
		if (queue_refuse_if_too_big(a, best))
			continue;
		if (!queue_fits(a, best))
			return;
		queue_assign_gpus(a, best);
		launch_start(a, best);
	}
}
