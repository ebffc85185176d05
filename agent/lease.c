/* lease.c: the lease long-poll, which is heartbeat and command channel at
 * once (docs/protocol.md, POST /agents/lease).  One request is always in
 * flight while the agent is connected; its reply brings jobs, renewals,
 * cancels, lost attempts and drain. */
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/harden.h"
#include "agent/lifecycle.h"
#include "agent/metrics.h"

#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static int64_t lease_queue_room(struct agent *a)
{
	int64_t running = 0, queued = 0, room;

	for (struct att *t = a->atts; t != NULL; t = t->next) {
		if (t->state == ATT_QUEUED)
			queued++;
		else if (t->state == ATT_RUNNING)
			running++;
	}
	room = a->conf.max_jobs - running + a->conf.prefetch - queued;
	return room < 0 || a->draining || harden_disk_low(a) ? 0 : room;
}

/* Slots free now (free.slots: a multi-node rank goes only to an agent that
 * can start it at once, docs/multi-node.md); 0 when it takes no job. */
static int64_t lease_free_slots(struct agent *a)
{
	int64_t running = 0;

	for (struct att *t = a->atts; t != NULL; t = t->next)
		if (t->state == ATT_RUNNING || t->state == ATT_QUEUED)
			running++;
	return running >= a->conf.max_jobs || a->draining || harden_disk_low(a)
	           ? 0
	           : a->conf.max_jobs - running;
}

/* Workspace job ids are integers on the wire. */
static json_t *lease_job_id(const char *job)
{
	int64_t id;

	if (parse_i64(job, 1, INT64_MAX, &id, NULL) == 0)
		return json_integer(id);
	return json_string(job);
}

/* How long the workspace may hold this poll.  The first poll after a
 * start or an outage is not held, so renewals of the attempts the agent
 * holds arrive at once. */
static int64_t lease_wait_s(struct agent *a)
{
	return a->lease_quick ? 0 : a->conf.heartbeat_ms / 1000;
}

/* Report the node's capacity when it differs from what the workspace was
 * last told (registration or an earlier poll): settings changed across a
 * restart.  Remembered once a poll carrying it succeeded. */
static void lease_add_capacity(struct agent *a, json_t *body)
{
	json_t *cap = slurm_poll_capacity(a);
	char *now = slurm_poll_fingerprint(cap), *sent = NULL;

	db_meta_get(a->db, "capacity_sent", &sent, NULL);
	if (sent == NULL || strcmp(sent, now) != 0) {
		json_object_set(body, "capacity", cap);
		free(a->cap_pending);
		a->cap_pending = now;
		now = NULL;
	}
	json_decref(cap);
	free(sent);
	free(now);
}

static json_t *lease_body(struct agent *a)
{
	json_t *running = json_array(), *body;
	char why[512];
	double cpus = a->cap.cpus;
	int64_t mem = a->cap.memory, gpus = a->cap.ngpus;

	for (struct att *t = a->atts; t != NULL; t = t->next) {
		if (t->local || t->state == ATT_DONE || t->not_current)
			continue;
		if (t->state == ATT_FINISHING &&
		    (t->final_acked || t->ws_ended))
			continue;
		json_array_append_new(
		    running,
		    json_pack("{s:o, s:I, s:s}", "job", lease_job_id(t->job),
		              "attempt", (json_int_t)t->attempt, "state",
		              t->state == ATT_QUEUED ? "assigned" : "running"));
		if (t->state == ATT_RUNNING) {
			cpus -= t->cpus;
			mem -= t->memory;
			gpus -= t->gpus;
		}
	}
	body =
	    json_pack("{s:I, s:I, s:b, s:o, s:{s:f, s:I, s:I}}", "wait",
	              (json_int_t)lease_wait_s(a), "queue_room",
	              (json_int_t)lease_queue_room(a), "draining", a->draining,
	              "running", running, "free", "cpus", cpus < 0 ? 0.0 : cpus,
	              "memory", (json_int_t)(mem < 0 ? 0 : mem), "gpus",
	              (json_int_t)(gpus < 0 ? 0 : gpus));
	lease_add_capacity(a, body);
	json_object_set_new(json_object_get(body, "free"), "slots",
	                    json_integer(lease_free_slots(a)));
	if (harden_disk_check(a->conf.state_dir, harden_disk_min_free(&a->conf),
	                      why, sizeof(why)))
		json_object_set_new(json_object_get(body, "free"), "refusing",
		                    json_string(why));
	if (preempt_active(a))
		json_object_set_new(body, "preempting", json_true());
	if (a->exiting)
		json_object_set_new(body, "exiting", json_true());
	return body;
}

int lease_told_now(const struct agent *a)
{
	return (a->draining ? LEASE_TOLD_DRAIN : 0) |
	       (preempt_active(a) ? LEASE_TOLD_PREEMPT : 0) |
	       (a->exiting ? LEASE_TOLD_EXIT : 0);
}

bool lease_telling(const struct agent *a, int what)
{
	if (a->lease_timer == NULL || !conn_usable((struct agent *)a) ||
	    (a->lease_told_acked & what) == what)
		return false;
	/* not sent yet (it goes out on the next loop turn), or in flight */
	return (a->lease_told_sent & what) != what || a->lease_call != NULL;
}

void lease_tell(struct agent *a)
{
	int now = lease_told_now(a);

	if (a->lease_timer == NULL)
		return; /* no workspace */
	if (a->lease_call != NULL && (a->lease_told_sent & now) != now) {
		/* held since before the news, and it offered room: a job
		 * the workspace gave it would come back as a handback at
		 * best, and a held poll would hide the news for a while */
		a->tp->cancel(a->t, a->lease_call);
		a->lease_call = NULL;
	}
	a->lease_quick = true;
	lease_poll_soon(a, 0);
}

static struct att *lease_lookup(struct agent *a, json_t *item)
{
	json_t *job = json_object_get(item, "job");
	int64_t attempt = json_integer_value(json_object_get(item, "attempt"));
	char id[64];

	if (json_is_integer(job))
		snprintf(id, sizeof(id), "%lld",
		         (long long)json_integer_value(job));
	else if (json_is_string(job))
		snprintf(id, sizeof(id), "%s", json_string_value(job));
	else
		return NULL;
	return att_find(a, id, attempt);
}

static void lease_renew(struct agent *a, json_t *item, int64_t base)
{
	struct att *t = lease_lookup(a, item);
	int64_t ttl_ms = harden_ttl_ms(json_object_get(item, "lease_ttl"));

	if (t == NULL || ttl_ms < 0)
		return;
	t->lease_ttl_ms = ttl_ms;
	t->lease_mono_ms = base + t->lease_ttl_ms;
	if (t->state == ATT_RUNNING)
		att_write_lease(t);
}

static void lease_apply(struct agent *a, json_t *rep, int64_t sent)
{
	int64_t now = now_mono_ms();
	struct err e = {0};
	size_t i;
	json_t *item;

	json_array_foreach(json_object_get(rep, "renewed"), i, item)
	    lease_renew(a, item, sent);
	json_array_foreach(json_object_get(rep, "jobs"), i, item)
	{
		if (queue_add_leased(a, item, now, &e) < 0)
			log_error("accept job: %s", e.msg);
	}
	json_array_foreach(json_object_get(rep, "cancel"), i, item)
	{
		struct att *t = lease_lookup(a, item);
		const char *why =
		    json_string_value(json_object_get(item, "reason"));
		if (t != NULL)
			att_cancel(t, why ? why : "cancelled");
	}
	json_array_foreach(json_object_get(rep, "rendezvous"), i, item)
	    rdv_apply(a, item);
	json_array_foreach(json_object_get(rep, "lost"), i, item)
	{
		struct att *t = lease_lookup(a, item);
		if (t != NULL && t->state == ATT_FINISHING && t->final_seen) {
			/* Its final event ended it there (or its lease
			 * lapsed: then that event's reply is a conflict). */
			log_debug("job=%s attempt=%lld ended at the workspace",
			          t->job, (long long)t->attempt);
			t->ws_ended = true;
		} else if (t != NULL && t->state == ATT_QUEUED && a->draining) {
			/* never started; this draining agent handed it back
			 * (or the workspace did for it) */
			log_info("job=%s attempt=%lld handed back", t->job,
			         (long long)t->attempt);
			t->not_current = true;
			att_cancel(t, "lost");
		} else if (t != NULL) {
			log_warn("job=%s attempt=%lld lost at the workspace: "
			         "stopping it",
			         t->job, (long long)t->attempt);
			t->not_current = true;
			att_cancel(t, "lost");
		}
	}
	if (json_is_true(json_object_get(rep, "drain")) && !a->draining) {
		log_info("workspace asked this agent to drain");
		a->draining = true;
	}
}

static void lease_done(void *arg, const struct tp_reply *rep)
{
	struct agent *a = arg;
	int64_t sent = a->lease_sent_mono, took = now_mono_ms() - sent;
	bool empty;

	bool quick = a->lease_was_quick;

	a->lease_call = NULL;
	if (rep->code < 0) {
		if (!conn_failed(a, rep, "lease")) {
			if (!a->auth_failed) {
				log_error("lease: %s", rep->err.msg);
				lease_poll_soon(a, a->conf.heartbeat_ms);
			}
		}
		agent_kick(a); /* a final event held for it (lease_telling) */
		return;
	}
	conn_ok(a);
	if ((a->lease_told_sent & ~a->lease_told_acked) != 0)
		log_info("the workspace knows this agent %s",
		         a->lease_told_sent & LEASE_TOLD_EXIT ? "exits"
		         : a->lease_told_sent & LEASE_TOLD_PREEMPT
		             ? "is preempted"
		             : "drains");
	a->lease_told_acked = a->lease_told_sent;
	if (a->cap_pending != NULL) {
		agent_note(a, "capacity_sent", "%s", a->cap_pending);
		free(a->cap_pending);
		a->cap_pending = NULL;
	}
	log_debug("lease reply after %lld ms: %zu jobs, %zu renewed, %zu "
	          "cancel, %zu lost",
	          (long long)took,
	          json_array_size(json_object_get(rep->json, "jobs")),
	          json_array_size(json_object_get(rep->json, "renewed")),
	          json_array_size(json_object_get(rep->json, "cancel")),
	          json_array_size(json_object_get(rep->json, "lost")));
	metrics_set(M_LAST_HEARTBEAT, NULL, (double)now_wall_ms() / 1000.0);
	lease_apply(a, rep->json, sent);
	agent_kick(a);
	/* An attempt in `lost` is listed in no later poll, so it is news
	 * once: its slot may be free now, and the workspace learns that only
	 * from the next poll.  Never spin on a server that answers an idle
	 * poll at once. */
	empty = json_array_size(json_object_get(rep->json, "jobs")) == 0 &&
	        json_array_size(json_object_get(rep->json, "cancel")) == 0 &&
	        json_array_size(json_object_get(rep->json, "lost")) == 0;
	if (empty && !quick && took < a->conf.heartbeat_ms / 2)
		lease_poll_soon(a, a->conf.heartbeat_ms - took);
	else
		lease_poll_soon(a, 0);
}

static void lease_send(void *arg)
{
	struct agent *a = arg;
	struct err e = {0};
	json_t *body;
	int r;

	if (a->lease_call != NULL || a->reg_call != NULL || a->auth_failed ||
	    a->quit || (a->lease_told_acked & LEASE_TOLD_EXIT))
		return;
	if (a->secret == NULL) {
		if (register_start(a, &e) < 0) {
			log_error("register: %s", e.msg);
			agent_note(a, "auth_error", "%s", e.msg);
			a->quit = true;
		}
		return;
	}
	body = lease_body(a);
	a->lease_sent_mono = now_mono_ms();
	a->lease_room_sent =
	    json_integer_value(json_object_get(body, "queue_room"));
	a->lease_told_sent = lease_told_now(a);
	r = a->tp->lease(a->t, body, lease_wait_s(a), lease_done, a,
	                 &a->lease_call, &e);
	a->lease_was_quick = a->lease_quick;
	a->lease_quick = false;
	json_decref(body);
	if (r < 0) {
		log_error("lease: %s", e.msg);
		lease_poll_soon(a, a->conf.heartbeat_ms);
	}
}

void lease_poll_soon(struct agent *a, int64_t delay_ms)
{
	if (a->lease_timer == NULL)
		return; /* no workspace: local jobs only */
	loop_timer_set(a->lease_timer, delay_ms);
}

void lease_start(struct agent *a)
{
	a->lease_timer = loop_timer_new(a->loop, lease_send, a);
	a->lease_quick = true;
	lease_poll_soon(a, 0);
}
