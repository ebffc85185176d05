/* Unit tests of the agent's attempt hub: the local queue (priority order,
 * fit, durable insert and reload), the lease poll (the request body built
 * from the agent's state, the reply's jobs, cancels, lost attempts and
 * drain), the outbox (seq order, ack, drop) and the attempt state machine
 * (att.c).  A fake transport records the calls the agent makes and lets a
 * test answer them; agent.db is a temp file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/db.h"
#include "agent/lifecycle.h"
#include "agent/loop.h"
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#define SNAP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* What the fake transport saw. */
static struct fake {
	int leases, events, snapshots, cancels, handbacks;
	json_t *lease_body, *events_body;
	tp_done_fn lease_done, events_done;
	void *lease_arg, *events_arg;
	char snap_jobs[8][16]; /* the attempts whose snapshot was asked */
} fk;

static int token; /* what a call in flight points at */

static int fk_lease(struct transport *t, json_t *body, int64_t wait_s,
                    tp_done_fn done, void *arg, struct tp_call **out,
                    struct err *e)
{
	fk.leases++;
	json_decref(fk.lease_body);
	fk.lease_body = json_deep_copy(body);
	fk.lease_done = done;
	fk.lease_arg = arg;
	*out = (struct tp_call *)&token;
	return 0;
}

static int fk_events(struct transport *t, const char *job, int64_t attempt,
                     json_t *body, tp_done_fn done, void *arg,
                     struct tp_call **out, struct err *e)
{
	fk.events++;
	json_decref(fk.events_body);
	fk.events_body = json_deep_copy(body);
	fk.events_done = done;
	fk.events_arg = arg;
	*out = (struct tp_call *)&token;
	return 0;
}

static int fk_snapshot(struct transport *t, const char *id, int fd,
                       tp_done_fn done, void *arg, struct tp_call **out,
                       struct err *e)
{
	struct att *a = arg;

	if (fk.snapshots < 8)
		snprintf(fk.snap_jobs[fk.snapshots], 16, "%s", a->job);
	fk.snapshots++;
	*out = (struct tp_call *)&token;
	return 0;
}

static int fk_log(struct transport *t, const char *job, int64_t attempt, int fd,
                  int64_t offset, int64_t len, tp_done_fn done, void *arg,
                  struct tp_call **out, struct err *e)
{
	*out = (struct tp_call *)&token;
	return 0;
}

static int fk_handback(struct transport *t, const char *job, int64_t attempt,
                       tp_done_fn done, void *arg, struct tp_call **out,
                       struct err *e)
{
	fk.handbacks++;
	*out = (struct tp_call *)&token;
	return 0;
}

static void fk_cancel(struct transport *t, struct tp_call *call)
{
	fk.cancels++;
}

static const struct transport_ops fake_ops = {
    .name = "fake",
    .lease = fk_lease,
    .events = fk_events,
    .log_append = fk_log,
    .snapshot_get = fk_snapshot,
    .handback = fk_handback,
    .cancel = fk_cancel,
};

static int kicks;

static void on_kick(void *arg)
{
	kicks++;
}

struct fixture {
	char dir[64];
	struct agent a;
};

static void agent_open(struct fixture *f)
{
	struct agent *a = &f->a;
	struct err e = {0};
	char *db = xasprintf("%s/agent.db", f->dir);

	memset(a, 0, sizeof(*a));
	assert_int_equal(agent_conf_load(&a->conf, "/dev/null", &e), 0);
	free(a->conf.state_dir);
	a->conf.state_dir = xstrdup(f->dir);
	a->conf.max_jobs = 3;
	a->conf.prefetch = 2;
	a->cap.cpus = 4;
	a->cap.memory = 8LL << 30;
	a->cap.ngpus = 2;
	assert_int_equal(db_open(db, &a->db, &e), 0);
	free(db);
	assert_int_equal(loop_new(&a->loop, &e), 0);
	a->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(a->ino_fd >= 0);
	a->sched_timer = loop_timer_new(a->loop, on_kick, a);
	a->hk_timer = loop_timer_new(a->loop, on_kick, a);
	a->conn_timer = loop_timer_new(a->loop, on_kick, a);
	a->tp = &fake_ops;
	a->agent_id = xstrdup("agent-1");
	a->secret = xstrdup("secret");
}

static void agent_close(struct fixture *f)
{
	struct agent *a = &f->a;

	while (a->atts != NULL)
		att_remove(a, a->atts);
	preempt_free(a);
	loop_timer_free(a->sched_timer);
	loop_timer_free(a->hk_timer);
	loop_timer_free(a->conn_timer);
	loop_timer_free(a->lease_timer);
	free(a->cap_pending);
	free(a->agent_id);
	free(a->secret);
	close(a->ino_fd);
	loop_free(a->loop);
	db_close(a->db);
	agent_conf_free(&a->conf);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/tether-att-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	memset(&fk, 0, sizeof(fk));
	kicks = 0;
	agent_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	agent_close(f);
	json_decref(fk.lease_body);
	json_decref(fk.events_body);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

/* A job as a lease reply carries it. */
static json_t *job_json(int64_t id, int64_t priority, double cpus)
{
	return json_pack("{s:I, s:I, s:I, s:s, s:{s:s, s:[s], s:I, s:{s:f}}}",
	                 "job", (json_int_t)id, "attempt", (json_int_t)1,
	                 "lease_ttl", (json_int_t)60, "snapshot", SNAP, "spec",
	                 "name", "t", "command", "true", "priority",
	                 (json_int_t)priority, "resources", "cpus", cpus);
}

static struct att *add_job(struct agent *a, int64_t id, int64_t priority,
                           double cpus)
{
	json_t *j = job_json(id, priority, cpus);
	struct err e = {0};
	char name[32];

	assert_int_equal(queue_add_leased(a, j, now_mono_ms(), &e), 0);
	json_decref(j);
	snprintf(name, sizeof(name), "%lld", (long long)id);
	assert_non_null(att_find(a, name, 1));
	return att_find(a, name, 1);
}

static int64_t count_rows(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* ---- queue ---- */

/* Higher priority first, then FIFO; a job that does not fit stops the pass
 * (a smaller one behind it never overtakes). */
static void test_queue_priority_then_fifo_strict_fit(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;

	add_job(a, 1, 0, 2);   /* low priority, first in */
	add_job(a, 2, 5, 2);   /* high */
	add_job(a, 3, 5, 1);   /* high, after 2 */
	add_job(a, 4, 0, 0.5); /* would fit, but behind 1 */
	queue_schedule(a);
	assert_int_equal(fk.snapshots, 2);
	assert_string_equal(fk.snap_jobs[0], "2");
	assert_string_equal(fk.snap_jobs[1], "3");
	assert_true(att_find(a, "2", 1)->preparing);
	assert_true(att_find(a, "3", 1)->preparing);
	/* 1 needs 2 CPUs, 1 is left: it waits, and 4 waits behind it */
	assert_false(att_find(a, "1", 1)->preparing);
	assert_false(att_find(a, "4", 1)->preparing);
	assert_int_equal(att_find(a, "1", 1)->state, ATT_QUEUED);
}

/* max_jobs bounds the slots whatever the CPUs. */
static void test_queue_max_jobs(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;

	for (int i = 1; i <= 5; i++)
		add_job(a, i, 0, 0.1);
	queue_schedule(a);
	assert_int_equal(fk.snapshots, a->conf.max_jobs);
	assert_string_equal(fk.snap_jobs[0], "1");
	assert_string_equal(fk.snap_jobs[2], "3");
}

/* A job that can never fit this node ends at once with launch_failed and
 * is never started. */
static void test_queue_refuses_too_big(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *t = add_job(a, 7, 0, 64);

	assert_int_equal(t->state, ATT_FINISHING);
	assert_true(t->final_seen);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox WHERE "
	                                   "job = '7' AND final = 1 AND body "
	                                   "LIKE '%launch_failed%'"),
	                 1);
	queue_schedule(a);
	assert_int_equal(fk.snapshots, 0);
}

/* The queue survives a restart: the rows come back with their priority,
 * order, resources and snapshot, local jobs included; a job re-sent by
 * the workspace is not queued twice. */
static void test_queue_durable_reload(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct err e = {0};
	struct att *t;
	char *local = NULL;
	json_t *again = job_json(2, 9, 1);

	add_job(a, 1, 0, 1);
	add_job(a, 2, 5, 2);
	assert_int_equal(queue_submit_local(a->db, "{\"command\":[\"true\"]}",
	                                    1.5, 1024, 0, 3, &local, &e),
	                 0);
	assert_string_equal(local, "L1");
	assert_int_equal(queue_add_leased(a, again, now_mono_ms(), &e), 0);
	json_decref(again);
	assert_int_equal(
	    count_rows(a->db, "SELECT COUNT(*) FROM attempts WHERE state = "
	                      "'queued'"),
	    3);

	agent_close(f); /* the agent stops; agent.db stays */
	agent_open(f);
	assert_null(a->atts);
	assert_int_equal(recovery_load(a, &e), 0);
	t = att_find(a, "2", 1);
	assert_non_null(t);
	assert_int_equal(t->state, ATT_QUEUED);
	assert_int_equal(t->priority, 5); /* not the re-sent 9 */
	assert_true(t->cpus == 2.0);
	assert_string_equal(t->snapshot, SNAP);
	assert_false(t->local);
	assert_true(att_find(a, "1", 1)->fifo < t->fifo);
	t = att_find(a, "L1", 1);
	assert_non_null(t);
	assert_true(t->local);
	assert_int_equal(t->priority, 3);
	assert_int_equal(t->memory, 1024);
	assert_true(att_find(a, "2", 1)->fifo < t->fifo);
	/* an attempt this node already ended, sent again, is not run again */
	assert_int_equal(db_exec(a->db,
	                         "UPDATE attempts SET state = 'done' WHERE "
	                         "job = '1'",
	                         &e),
	                 0);
	att_remove(a, att_find(a, "1", 1));
	again = job_json(1, 0, 1);
	assert_int_equal(queue_add_leased(a, again, now_mono_ms(), &e), 0);
	json_decref(again);
	assert_null(att_find(a, "1", 1));
	assert_int_equal(count_rows(a->db,
	                            "SELECT COUNT(*) FROM attempts "
	                            "WHERE job = '1' AND state = 'done'"),
	                 1);
	free(local);
}

/* ---- lease ---- */

static json_t *lease_send_now(struct agent *a)
{
	struct err e = {0};

	if (a->lease_timer == NULL)
		lease_start(a);
	else
		lease_poll_soon(a, 0);
	assert_int_equal(loop_run_once(a->loop, &e), 0);
	return fk.lease_body;
}

static void lease_answer(struct agent *a, const char *reply)
{
	struct tp_reply rep = {0};

	rep.json = json_loads(reply, 0, NULL);
	assert_non_null(rep.json);
	rep.status = 200;
	rep.retry_after_ms = -1;
	assert_non_null(fk.lease_done);
	fk.lease_done(fk.lease_arg, &rep);
	json_decref(rep.json);
}

static json_t *running_entry(json_t *body, const char *job)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(body, "running"), i, v)
	{
		json_t *id = json_object_get(v, "job");
		char s[32];
		snprintf(s, sizeof(s), "%lld",
		         (long long)json_integer_value(id));
		if (strcmp(s, job) == 0)
			return v;
	}
	return NULL;
}

/* The poll lists the attempts the workspace must renew, with their state,
 * offers the free capacity and the queue room, and says nothing of
 * draining, preempting or exiting while none holds. */
static void test_lease_body_from_state(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *run = add_job(a, 1, 0, 1.5), *fin;
	json_t *body, *v;

	run->state = ATT_RUNNING;
	run->memory = 1LL << 30;
	run->gpus = 1;
	add_job(a, 2, 0, 1);
	fin = add_job(a, 3, 0, 1);
	fin->state = ATT_FINISHING;
	fin->final_acked = true;                 /* reported: not listed */
	add_job(a, 4, 0, 1)->not_current = true; /* not listed */
	att_new(a, "L1", 1)->local = true;       /* local: not listed */

	body = lease_send_now(a);
	assert_int_equal(fk.leases, 1);
	assert_int_equal(json_array_size(json_object_get(body, "running")), 2);
	v = running_entry(body, "1");
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "state")),
	                    "running");
	v = running_entry(body, "2");
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "state")),
	                    "assigned");
	assert_null(running_entry(body, "3"));
	v = json_object_get(body, "free");
	assert_true(json_real_value(json_object_get(v, "cpus")) == 2.5);
	assert_int_equal(json_integer_value(json_object_get(v, "memory")),
	                 7LL << 30);
	assert_int_equal(json_integer_value(json_object_get(v, "gpus")), 1);
	/* max_jobs 3 - 1 running + prefetch 2 - 3 queued (2, 4, L1) */
	assert_int_equal(
	    json_integer_value(json_object_get(body, "queue_room")), 1);
	assert_true(json_is_false(json_object_get(body, "draining")));
	assert_null(json_object_get(body, "exiting"));
	assert_null(json_object_get(body, "preempting"));
	/* the first poll is not held, so renewals come at once */
	assert_int_equal(json_integer_value(json_object_get(body, "wait")), 0);
}

/* Draining and exiting are told in the body, and a draining agent offers
 * no room. */
static void test_lease_body_draining_exiting(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	json_t *body;

	a->draining = true;
	a->exiting = true;
	body = lease_send_now(a);
	assert_true(json_is_true(json_object_get(body, "draining")));
	assert_true(json_is_true(json_object_get(body, "exiting")));
	assert_int_equal(
	    json_integer_value(json_object_get(body, "queue_room")), 0);
	assert_int_equal(lease_told_now(a), LEASE_TOLD_DRAIN | LEASE_TOLD_EXIT);
	assert_int_equal(a->lease_told_sent,
	                 LEASE_TOLD_DRAIN | LEASE_TOLD_EXIT);
	lease_answer(a, "{}");
	assert_int_equal(a->lease_told_acked,
	                 LEASE_TOLD_DRAIN | LEASE_TOLD_EXIT);
}

/* A preemption notice is told at once: the held poll (it offered room)
 * is dropped and a new one says preempting and draining, with no room. */
static void test_lease_body_preempting(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct err e = {0};
	json_t *body;

	assert_int_equal(preempt_init(a, &e), 0);
	body = lease_send_now(a);
	assert_null(json_object_get(body, "preempting"));
	assert_true(json_integer_value(json_object_get(body, "queue_room")) >
	            0);
	assert_int_equal(fk.cancels, 0);
	preempt_notice(a, "test", 30000);
	assert_int_equal(fk.cancels, 1); /* the held poll */
	assert_null(a->lease_call);
	assert_int_equal(loop_run_once(a->loop, &e), 0);
	assert_int_equal(fk.leases, 2);
	body = fk.lease_body;
	assert_true(json_is_true(json_object_get(body, "preempting")));
	assert_true(json_is_true(json_object_get(body, "draining")));
	assert_int_equal(
	    json_integer_value(json_object_get(body, "queue_room")), 0);
	assert_int_equal(json_integer_value(json_object_get(body, "wait")), 0);
	assert_true(lease_telling(a, LEASE_TOLD_PREEMPT));
	lease_answer(a, "{}");
	assert_false(lease_telling(a, LEASE_TOLD_PREEMPT));
}

/* A reply's new jobs are queued, renewals move the lease deadline, a
 * cancelled queued attempt ends with a final event, a lost running one is
 * stopped (cancel file) and no longer current, a lost finishing one is
 * ended at the workspace, and `drain` starts draining. */
static void test_lease_reply_new_cancel_lost(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *q, *run, *fin, *t;
	struct err e = {0};
	char *cancel;
	int64_t before;

	q = add_job(a, 1, 0, 1);
	run = add_job(a, 2, 0, 1);
	fin = add_job(a, 3, 0, 1);
	assert_int_equal(mkdir_p(run->dir, 0700, &e), 0);
	run->state = ATT_RUNNING;
	fin->state = ATT_FINISHING;
	fin->final_seen = true;
	before = run->lease_mono_ms;
	lease_send_now(a);
	lease_answer(
	    a, "{\"jobs\": [{\"job\": 9, \"attempt\": 2, "
	       "\"lease_ttl\": 30, \"spec\": {\"name\": \"t\", \"command\": "
	       "[\"true\"]}}],"
	       " \"renewed\": [{\"job\": 2, \"attempt\": 1, "
	       "\"lease_ttl\": 600}],"
	       " \"cancel\": [{\"job\": 1, \"attempt\": 1, "
	       "\"reason\": \"cancelled\"}],"
	       " \"lost\": [{\"job\": 2, \"attempt\": 1}, "
	       "{\"job\": 3, \"attempt\": 1}],"
	       " \"drain\": true}");
	t = att_find(a, "9", 2);
	assert_non_null(t);
	assert_int_equal(t->state, ATT_QUEUED);
	assert_int_equal(t->lease_ttl_ms, 30000);
	assert_true(run->lease_mono_ms > before);
	/* cancelled before it started: a final event, then reported */
	assert_int_equal(q->state, ATT_FINISHING);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox WHERE "
	                                   "job = '1' AND final = 1 AND body "
	                                   "LIKE '%\"cancelled\"%'"),
	                 1);
	/* lost while running: the runner is told to stop */
	assert_true(run->not_current);
	cancel = attempt_path(run->dir, ATTEMPT_CANCEL);
	assert_int_equal(access(cancel, F_OK), 0);
	free(cancel);
	assert_true(fin->ws_ended);
	assert_false(fin->not_current);
	assert_true(a->draining);
}

/* ---- outbox ---- */

static void write_events(struct att *t, const char *text)
{
	char *path = attempt_path(t->dir, ATTEMPT_EVENTS);
	FILE *fp = fopen(path, "a");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	free(path);
}

static int64_t sent_seq(size_t i)
{
	json_t *evs = json_object_get(fk.events_body, "events");

	return json_integer_value(
	    json_object_get(json_array_get(evs, i), "seq"));
}

static void events_answer(int code, int64_t acked)
{
	struct tp_reply rep = {0};
	tp_done_fn done = fk.events_done;

	rep.code = code;
	rep.json = json_pack("{s:I}", "acked", (json_int_t)acked);
	rep.retry_after_ms = -1;
	if (code == TERR_CONFLICT)
		err_set(&rep.err, TERR_CONFLICT, "not current");
	fk.events_done = NULL;
	done(fk.events_arg, &rep);
	json_decref(rep.json);
}

static struct att *running_att(struct agent *a, int64_t id)
{
	struct att *t = add_job(a, id, 0, 1);
	struct err e = {0};

	assert_int_equal(mkdir_p(t->dir, 0700, &e), 0);
	t->state = ATT_RUNNING;
	return t;
}

/* Events go out in seq order whatever the order of the lines, only
 * complete lines are taken, and an ack deletes what it covers. */
static void test_outbox_seq_order_and_ack(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *t = running_att(a, 1);
	struct err e = {0};

	write_events(t, "{\"seq\":2,\"type\":\"phase\"}\n"
	                "{\"seq\":1,\"type\":\"phase\"}\n"
	                "{\"seq\":3,\"type\":\"phase\"}\n"
	                "{\"seq\":4,\"type\":\"pha");
	assert_int_equal(outbox_tail(t, &e), 0);
	assert_int_equal(t->last_seq, 3);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox"), 3);
	outbox_kick(t);
	assert_int_equal(fk.events, 1);
	assert_int_equal(
	    json_array_size(json_object_get(fk.events_body, "events")), 3);
	assert_int_equal(sent_seq(0), 1);
	assert_int_equal(sent_seq(1), 2);
	assert_int_equal(sent_seq(2), 3);
	outbox_kick(t); /* one call at a time */
	assert_int_equal(fk.events, 1);

	write_events(t, "se\"}\n");
	assert_int_equal(outbox_tail(t, &e), 0);
	assert_int_equal(t->last_seq, 4);
	events_answer(0, 2);
	assert_int_equal(count_rows(a->db, "SELECT MIN(seq) FROM outbox"), 3);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox"), 2);
	/* the offset is durable: nothing is copied twice */
	assert_int_equal(count_rows(a->db, "SELECT events_off FROM attempts "
	                                   "WHERE job = '1'"),
	                 t->events_off);
	assert_int_equal(outbox_tail(t, &e), 0);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox"), 2);
}

/* The final event waits while the attempt runs; drop forgets the rest. */
static void test_outbox_final_waits_and_drop(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *t = running_att(a, 1);
	struct err e = {0};

	write_events(t, "{\"seq\":1,\"type\":\"phase\"}\n"
	                "{\"seq\":2,\"type\":\"final\",\"reason\":"
	                "\"succeeded\"}\n");
	assert_int_equal(outbox_tail(t, &e), 0);
	assert_true(t->final_seen);
	outbox_kick(t);
	assert_int_equal(
	    json_array_size(json_object_get(fk.events_body, "events")), 1);
	assert_int_equal(sent_seq(0), 1);
	outbox_drop(t);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox"), 0);
}

/* A 409 means the attempt is no longer current: its events are dropped
 * and it is never sent more. */
static void test_outbox_conflict_drops(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *t = running_att(a, 1);
	struct err e = {0};

	write_events(t, "{\"seq\":1,\"type\":\"phase\"}\n");
	assert_int_equal(outbox_tail(t, &e), 0);
	outbox_kick(t);
	events_answer(TERR_CONFLICT, 0);
	assert_true(t->not_current);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox"), 0);
	assert_int_equal(count_rows(a->db, "SELECT not_current FROM attempts "
	                                   "WHERE job = '1'"),
	                 1);
	write_events(t, "{\"seq\":2,\"type\":\"phase\"}\n");
	assert_int_equal(outbox_tail(t, &e), 0);
	outbox_kick(t);
	assert_int_equal(fk.events, 1);
}

/* ---- att: the state machine ---- */

static const char *row_state(sqlite3 *db, const char *job)
{
	static char buf[32];
	sqlite3_stmt *st;

	buf[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT state FROM attempts WHERE "
	                                    "job = ?",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(buf, sizeof(buf), "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

/* Every (state, event) pair: a step in the table changes the state (and
 * the row where the table says so), any other is refused and changes
 * nothing. */
static void test_att_transition_table(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	/* expected next state, -1: refused */
	static const int next[3][7] = {
	    /* LAUNCHED LAUNCH_FAILED FINAL ENDED REPORTED DROPPED GIVE_UP */
	    [ATT_QUEUED] = {ATT_RUNNING, ATT_QUEUED, ATT_FINISHING, -1, -1,
	                    ATT_DONE, ATT_DONE},
	    [ATT_RUNNING] = {-1, ATT_QUEUED, ATT_FINISHING, ATT_FINISHING, -1,
	                     -1, -1},
	    [ATT_FINISHING] = {-1, -1, -1, -1, ATT_DONE, -1, -1},
	};
	int64_t id = 1;

	for (int s = ATT_QUEUED; s <= ATT_FINISHING; s++) {
		for (int ev = ATT_EV_LAUNCHED; ev <= ATT_EV_GIVE_UP; ev++) {
			struct att *t = add_job(a, id, 0, 1);
			struct err e = {0};
			char job[32];
			int r;

			snprintf(job, sizeof(job), "%lld", (long long)id++);
			t->state = (enum att_state)s;
			r = att_request(t, (enum att_event)ev, &e);
			print_message("state %d event %d -> %d\n", s, ev, r);
			if (next[s][ev] < 0) {
				assert_int_equal(r, TERR_INVAL);
				assert_non_null(strstr(e.msg, "not allowed"));
				assert_int_equal(t->state, s);
				assert_string_equal(row_state(a->db, job),
				                    "queued");
				continue;
			}
			assert_int_equal(r, 0);
			if (ev == ATT_EV_REPORTED || ev == ATT_EV_DROPPED) {
				/* stored and forgotten */
				assert_null(att_find(a, job, 1));
				assert_string_equal(row_state(a->db, job),
				                    "done");
				continue;
			}
			assert_int_equal(t->state, next[s][ev]);
			assert_string_equal(row_state(a->db, job),
			                    ev == ATT_EV_ENDED ? "finishing"
			                                       : "queued");
		}
	}
}

/* An agent-made final event ends a running attempt: stored in the outbox
 * with the next seq, the row finishing, in one transaction; it is refused
 * once the attempt finishes. */
static void test_att_final_event(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *t = running_att(a, 1);
	struct err e = {0};

	t->last_seq = 4;
	assert_int_equal(att_final_event(t, "lost", "gone", &e), 0);
	assert_int_equal(t->state, ATT_FINISHING);
	assert_true(t->final_seen);
	assert_true(t->outputs_done);
	assert_string_equal(row_state(a->db, "1"), "finishing");
	assert_int_equal(count_rows(a->db, "SELECT seq FROM outbox WHERE "
	                                   "final = 1 AND body LIKE "
	                                   "'%\"lost\"%'"),
	                 5);
	assert_int_equal(att_final_event(t, "lost", "again", &e), TERR_INVAL);
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM outbox"), 1);
}

/* A runner that ended with its final event moves its attempt to
 * finishing on the next poke. */
static void test_att_poke_runner_ended(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *t = running_att(a, 1);
	char *res = attempt_path(t->dir, ATTEMPT_RESULT);
	FILE *fp = fopen(res, "w");

	assert_non_null(fp);
	fclose(fp);
	free(res);
	write_events(t, "{\"seq\":1,\"type\":\"final\",\"reason\":"
	                "\"succeeded\"}\n");
	a->conn_down = true; /* the state step only, no uploads */
	att_poke(t);
	assert_int_equal(t->state, ATT_FINISHING);
	assert_true(t->final_seen);
	assert_string_equal(row_state(a->db, "1"), "finishing");
}

/* The final event's ack reports the attempt, on the next loop turn: the
 * outbox's reply callback does not re-enter the attempt. */
static void test_att_reported_on_next_turn(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct att *t = running_att(a, 1);
	struct err e = {0};

	assert_int_equal(att_final_event(t, "lost", "gone", &e), 0);
	att_poke(t); /* no checkpoint, log shipped: the final goes out */
	assert_int_equal(fk.events, 1);
	events_answer(0, t->last_seq);
	assert_true(t->final_acked);
	assert_true(t->poke_due);
	assert_non_null(att_find(a, "1", 1)); /* not inside the callback */
	assert_string_equal(row_state(a->db, "1"), "finishing");
	assert_int_equal(loop_run_once(a->loop, &e), 0);
	assert_null(att_find(a, "1", 1));
	assert_string_equal(row_state(a->db, "1"), "done");
	assert_int_equal(count_rows(a->db, "SELECT COUNT(*) FROM attempts "
	                                   "WHERE ended_at IS NOT NULL"),
	                 1);
}

/* A local attempt reports nowhere: finishing, it is done at once. */
static void test_att_local_done(void **state)
{
	struct fixture *f = *state;
	struct agent *a = &f->a;
	struct err e = {0};
	char *id = NULL;
	struct att *t;

	assert_int_equal(queue_submit_local(a->db, "{}", 1, 0, 0, 0, &id, &e),
	                 0);
	assert_int_equal(recovery_load(a, &e), 0);
	t = att_find(a, id, 1);
	assert_non_null(t);
	t->state = ATT_FINISHING;
	att_poke(t);
	assert_null(att_find(a, id, 1));
	assert_string_equal(row_state(a->db, id), "done");
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_queue_priority_then_fifo_strict_fit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_max_jobs, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_refuses_too_big, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_durable_reload, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_lease_body_from_state, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_lease_body_draining_exiting,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lease_body_preempting, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_lease_reply_new_cancel_lost,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_seq_order_and_ack,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_final_waits_and_drop,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_conflict_drops, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_att_transition_table, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_att_final_event, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_att_poke_runner_ended, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_att_reported_on_next_turn,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_att_local_done, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
