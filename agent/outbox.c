/* outbox.c: status events.  The runner appends them to the attempt's
 * `events` file; the agent copies each complete line into the outbox table
 * (with the file offset, in one transaction) before sending, sends them in
 * seq order, and deletes them when the workspace acknowledges.  The final
 * event waits until the log is fully shipped and the outputs uploaded, so a
 * terminal job at the workspace always has its complete log. */
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/lifecycle.h"
#include "agent/loop.h"
#include "agent/metrics.h"

#include "common/attempt.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUTBOX_READ (256 * 1024)
/* Bytes of events in one call: well under the workspace's JSON body limit
 * (1 MiB, docs/protocol.md) now that one `metrics` event may carry up to
 * 1000 points; a call holds at least one event. */
#define OUTBOX_CALL_BYTES (512 * 1024)
/* After a tail that found `metrics` events, the next one of a running
 * attempt waits this long: their points then go in one transaction a
 * second instead of one per event (docs/metrics.md, "Cost"). */
#define OUTBOX_METRICS_HOLD_MS 1000

/* Keep the final reason on the node for `tether-agent jobs`. */
static int outbox_note_final(struct att *t, json_t *ev, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(t->a->db,
	                    "UPDATE attempts SET reason = ?, message = ? "
	                    "WHERE job = ? AND attempt = ?",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_text(st, 1,
	                  json_string_value(json_object_get(ev, "reason")), -1,
	                  SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2,
	                  json_string_value(json_object_get(ev, "message")), -1,
	                  SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, t->attempt);
	return db_step_done(t->a->db, st, e);
}

static int outbox_store(struct att *t, json_t *ev, const char *line,
                        struct err *e)
{
	int64_t seq = json_integer_value(json_object_get(ev, "seq"));
	bool final = json_is_string(json_object_get(ev, "type")) &&
	             strcmp(json_string_value(json_object_get(ev, "type")),
	                    "final") == 0;
	sqlite3_stmt *st;
	int r;

	if (seq > t->last_seq)
		t->last_seq = seq;
	if (json_is_string(json_object_get(ev, "type")) &&
	    strcmp(json_string_value(json_object_get(ev, "type")), "metrics") ==
	        0)
		t->tail_saw_metrics = true;
	metrics_agent_event(t, ev);
	if (final) {
		t->final_seen = true;
		if ((r = outbox_note_final(t, ev, e)) < 0)
			return r;
	}
	if (t->local || t->not_current)
		return 0;
	if ((r = db_prepare(t->a->db,
	                    "INSERT OR IGNORE INTO outbox(job, attempt, seq, "
	                    "final, body) VALUES(?, ?, ?, ?, ?)",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->attempt);
	sqlite3_bind_int64(st, 3, seq);
	sqlite3_bind_int(st, 4, final);
	sqlite3_bind_text(st, 5, line, -1, SQLITE_STATIC);
	return db_step_done(t->a->db, st, e);
}

static int outbox_save_offset(struct att *t, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(t->a->db,
	                    "UPDATE attempts SET events_off = ?, last_seq = ? "
	                    "WHERE job = ? AND attempt = ?",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, t->events_off);
	sqlite3_bind_int64(st, 2, t->last_seq);
	sqlite3_bind_text(st, 3, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, t->attempt);
	return db_step_done(t->a->db, st, e);
}

/* One line of `events` into the outbox (a malformed one is skipped). */
static int outbox_line(void *arg, json_t *ev, const char *line, struct err *e)
{
	struct att *t = arg;

	if (ev != NULL)
		return outbox_store(t, ev, line, e);
	log_warn("job=%s: bad event line skipped", t->job);
	return 0;
}

/* Copy the complete lines of `events` past events_off into the outbox.
 * The commits do not wait for the disk: the events file is the source, and
 * a commit that a power loss takes goes with its events_off, so the lines
 * are copied again from the older offset (INSERT OR IGNORE by seq;
 * docs/recovery.md, "Durability"). */
int outbox_tail(struct att *t, struct err *e)
{
	char *path = attempt_path(t->dir, ATTEMPT_EVENTS);
	char *buf = NULL;
	struct err fe = {0};
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return 0;
	if ((r = db_relaxed(t->a->db, true, e)) < 0) {
		close(fd);
		return r;
	}
	buf = malloc(OUTBOX_READ + 1);
	while ((n = pread(fd, buf, OUTBOX_READ, t->events_off)) > 0) {
		int64_t off0 = t->events_off;
		buf[n] = '\0';
		if ((r = db_begin(t->a->db, e)) < 0)
			break;
		t->events_off += (int64_t)attempt_events_split(
		    buf, (size_t)n, outbox_line, t, &r, e);
		if (r < 0 || (r = outbox_save_offset(t, e)) < 0 ||
		    (r = db_commit(t->a->db, e)) < 0) {
			db_rollback(t->a->db);
			t->events_off = off0;
			break;
		}
		if (t->events_off == off0)
			break; /* only a partial line so far */
	}
	if (db_relaxed(t->a->db, false, &fe) < 0)
		log_error("agent.db: synchronous=FULL again: %s", fe.msg);
	free(buf);
	close(fd);
	if (t->tail_saw_metrics)
		t->tail_hold_ms = now_mono_ms() + OUTBOX_METRICS_HOLD_MS;
	t->tail_saw_metrics = false;
	return r;
}

bool outbox_tail_due(struct att *t)
{
	int64_t left = t->tail_hold_ms - now_mono_ms();

	if (left <= 0)
		return true;
	if (!loop_timer_armed(t->a->sched_timer))
		loop_timer_set(t->a->sched_timer, left);
	return false;
}

static bool outbox_final_ready(struct att *t)
{
	return t->state == ATT_FINISHING && t->outputs_done &&
	       shipper_done(t) && checkpoint_done(t);
}

static void outbox_ack(struct att *t, int64_t acked, bool all)
{
	sqlite3_stmt *st;
	struct err e = {0};

	if (db_prepare(t->a->db,
	               "DELETE FROM outbox WHERE job = ? AND attempt = ? AND "
	               "seq <= ?",
	               &st, &e) < 0)
		return;
	sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->attempt);
	sqlite3_bind_int64(st, 3, all ? INT64_MAX : acked);
	db_step_relaxed(t->a->db, st, t->job);
}

void outbox_drop(struct att *t)
{
	outbox_ack(t, 0, true);
}

static void outbox_mark(struct att *t, const char *column)
{
	char *sql = xasprintf("UPDATE attempts SET %s = 1 WHERE job = ? AND "
	                      "attempt = ?",
	                      column);
	sqlite3_stmt *st;
	struct err e = {0};

	if (db_prepare(t->a->db, sql, &st, &e) == 0) {
		sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, t->attempt);
		db_step_relaxed(t->a->db, st, t->job);
	}
	free(sql);
}

static void outbox_reply(void *arg, const struct tp_reply *rep)
{
	struct att *t = arg;
	int64_t acked = json_integer_value(json_object_get(rep->json, "acked"));

	metrics_call_end(t->ev_call, "events", rep->code == 0);
	t->ev_call = NULL;
	if (rep->code == TERR_CONFLICT) {
		log_warn("job=%s attempt=%lld is no longer current at the "
		         "workspace (%s); its events are dropped",
		         t->job, (long long)t->attempt, rep->err.msg);
		t->not_current = true;
		outbox_mark(t, "not_current");
		outbox_ack(t, 0, true);
	} else if (rep->code < 0) {
		if (conn_failed(t->a, rep, "events"))
			return;
		log_error("job=%s attempt=%lld events refused: %s; dropped",
		          t->job, (long long)t->attempt, rep->err.msg);
		acked = t->last_seq;
	}
	if (rep->code == 0 || rep->code != TERR_CONFLICT) {
		outbox_ack(t, acked, false);
		if (t->final_seen && acked >= t->last_seq &&
		    outbox_final_ready(t)) {
			t->final_acked = true;
			outbox_mark(t, "final_acked");
		}
	}
	att_poke_soon(t);
}

void outbox_kick(struct att *t)
{
	struct agent *a = t->a;
	sqlite3_stmt *st;
	struct err e = {0};
	json_t *events;
	size_t bytes = 0;

	if (t->local || t->ev_call != NULL || t->not_current ||
	    t->final_acked || !conn_usable(a))
		return;
	if (db_prepare(a->db,
	               "SELECT body, final FROM outbox WHERE job = ? AND "
	               "attempt = ? ORDER BY seq LIMIT 200",
	               &st, &e) < 0)
		return;
	sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->attempt);
	events = json_array();
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(st, 0);
		json_t *ev;
		bytes += strlen(body) + 1;
		if (bytes > OUTBOX_CALL_BYTES && json_array_size(events) > 0)
			break; /* the rest goes in the next call */
		ev = json_loads(body, 0, NULL);
		if (sqlite3_column_int(st, 1) &&
		    (!outbox_final_ready(t) ||
		     (preempt_active(a) &&
		      lease_telling(a, LEASE_TOLD_PREEMPT)))) {
			/* the workspace hears of the preemption first, so
			 * that it gives this agent nothing back */
			json_decref(ev);
			break;
		}
		if (sqlite3_column_int(st, 1) && json_is_object(ev))
			/* the whole log is shipped: its final length lets
			 * the workspace tell a complete log (protocol.md) */
			json_object_set_new(ev, "log_length",
			                    json_integer(shipper_log_size(t)));
		if (ev != NULL)
			json_array_append_new(events, ev);
	}
	sqlite3_finalize(st);
	if (json_array_size(events) > 0) {
		json_t *body = json_pack("{s:o}", "events", events);
		if (a->tp->events(a->t, t->job, t->attempt, body, outbox_reply,
		                  t, &t->ev_call, &e) < 0)
			log_error("job=%s events: %s", t->job, e.msg);
		metrics_call_start(t->ev_call);
		json_decref(body);
	} else {
		json_decref(events);
	}
}
