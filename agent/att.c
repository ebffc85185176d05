/* att.c: one attempt held in memory: its inotify watch, its runner's
 * pidfd, and its state machine.  t->state changes only here, by the table
 * att_steps (state x event -> next state + action); other modules request
 * a step with att_request, and ask for a poke with att_poke_soon, which
 * runs on the next loop turn rather than inside their callback. */
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/lifecycle.h"

#include "common/attempt.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const att_names[] = {"queued", "running", "finishing",
                                        "done"};

const char *att_state_name(enum att_state s)
{
	return att_names[s];
}

int att_state_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s != NULL && strcmp(s, att_names[i]) == 0)
			return i;
	return -1;
}

/* What a step does besides setting t->state. */
enum att_action {
	ATT_ACT_NONE,  /* the requester wrote the row in its transaction */
	ATT_ACT_STORE, /* write the state to the attempt's row */
	ATT_ACT_FREE,  /* write it, then forget the attempt (t is freed) */
};

static const struct att_step {
	enum att_state from;
	enum att_event ev;
	enum att_state to;
	enum att_action act;
} att_steps[] = {
    {ATT_QUEUED, ATT_EV_LAUNCHED, ATT_RUNNING, ATT_ACT_NONE},
    {ATT_QUEUED, ATT_EV_LAUNCH_FAILED, ATT_QUEUED, ATT_ACT_NONE},
    {ATT_RUNNING, ATT_EV_LAUNCH_FAILED, ATT_QUEUED, ATT_ACT_NONE},
    {ATT_QUEUED, ATT_EV_FINAL, ATT_FINISHING, ATT_ACT_NONE},
    {ATT_RUNNING, ATT_EV_FINAL, ATT_FINISHING, ATT_ACT_NONE},
    {ATT_RUNNING, ATT_EV_ENDED, ATT_FINISHING, ATT_ACT_STORE},
    {ATT_FINISHING, ATT_EV_REPORTED, ATT_DONE, ATT_ACT_FREE},
    {ATT_QUEUED, ATT_EV_DROPPED, ATT_DONE, ATT_ACT_FREE},
    {ATT_QUEUED, ATT_EV_GIVE_UP, ATT_DONE, ATT_ACT_NONE},
};

static const struct att_step *att_step_find(enum att_state from,
                                            enum att_event ev)
{
	for (size_t i = 0; i < sizeof(att_steps) / sizeof(att_steps[0]); i++)
		if (att_steps[i].from == from && att_steps[i].ev == ev)
			return &att_steps[i];
	return NULL;
}

/* Write state s to the attempt's row (and its end time when done). */
static int att_store_state(struct att *t, enum att_state s, struct err *e)
{
	struct agent *a = t->a;
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(a->db,
	                    "UPDATE attempts SET state = ?, ended_at = CASE "
	                    "WHEN ? = 'done' THEN ? ELSE ended_at END WHERE "
	                    "job = ? AND attempt = ?",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_text(st, 1, att_state_name(s), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, att_state_name(s), -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, (double)now_wall_ms() / 1000.0);
	sqlite3_bind_text(st, 4, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, t->attempt);
	return db_step_done(a->db, st, e);
}

int att_request(struct att *t, enum att_event ev, struct err *e)
{
	const struct att_step *step = att_step_find(t->state, ev);
	struct agent *a = t->a;
	int r = 0;

	if (step == NULL)
		return err_set(e, TERR_INVAL,
		               "job=%s attempt=%lld: event %d not allowed "
		               "when %s",
		               t->job, (long long)t->attempt, (int)ev,
		               att_state_name(t->state));
	if (step->act != ATT_ACT_NONE &&
	    (r = att_store_state(t, step->to, e)) < 0) {
		err_wrap(e, "job=%s", t->job);
		if (step->act == ATT_ACT_FREE) /* never held again */
			att_remove(a, t);
		return r;
	}
	t->state = step->to;
	if (step->act != ATT_ACT_NONE && step->to == ATT_DONE)
		housekeeping_soon(a); /* its directory counts against the
		                       * budget now */
	if (step->act == ATT_ACT_FREE)
		att_remove(a, t);
	return 0;
}

/* Run the pokes att_poke_soon asked for. */
static void att_run_due(void *arg)
{
	struct agent *a = arg;
	struct att *t, *next;

	for (t = a->atts; t != NULL; t = next) {
		next = t->next;
		if (t->poke_due) {
			t->poke_due = false;
			att_poke(t); /* may free t */
		}
	}
}

void att_poke_soon(struct att *t)
{
	struct agent *a = t->a;

	if (a->att_timer == NULL)
		a->att_timer = loop_timer_new(a->loop, att_run_due, a);
	t->poke_due = true;
	loop_timer_set(a->att_timer, 0);
}

struct att *att_new(struct agent *a, const char *job, int64_t attempt)
{
	struct att *t = xcalloc(1, sizeof(*t));

	t->a = a;
	t->job = xstrdup(job);
	t->attempt = attempt;
	t->pidfd = -1;
	t->wd = -1;
	t->next = a->atts;
	a->atts = t;
	return t;
}

struct att *att_find(struct agent *a, const char *job, int64_t attempt)
{
	for (struct att *t = a->atts; t != NULL; t = t->next)
		if (strcmp(t->job, job) == 0 && t->attempt == attempt)
			return t;
	return NULL;
}

void att_free(struct att *t)
{
	struct agent *a;

	if (t == NULL)
		return;
	a = t->a;
	if (t->pidfd >= 0) {
		loop_unwatch(a->loop, t->pidfd);
		close(t->pidfd);
	}
	if (t->wd >= 0)
		inotify_rm_watch(a->ino_fd, t->wd);
	if (t->log_call)
		a->tp->cancel(a->t, t->log_call);
	if (t->ev_call)
		a->tp->cancel(a->t, t->ev_call);
	if (t->out_call)
		a->tp->cancel(a->t, t->out_call);
	if (t->snap_call)
		a->tp->cancel(a->t, t->snap_call);
	checkpoint_att_free(t);
	free(t->job);
	free(t->dir);
	free(t->gpu_ids);
	free(t->snapshot);
	free(t->out_path);
	free(t);
}

void att_remove(struct agent *a, struct att *t)
{
	struct att **pp;

	for (pp = &a->atts; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	att_free(t);
}

int att_watch(struct att *t, struct err *e)
{
	if (t->wd >= 0)
		return 0;
	t->wd = inotify_add_watch(t->a->ino_fd, t->dir,
	                          IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO |
	                              IN_CREATE);
	if (t->wd < 0)
		return err_sys(e, TERR_IO, "inotify %s", t->dir);
	return 0;
}

void att_on_inotify(struct agent *a, int fd)
{
	char buf[8192] __attribute__((aligned(8)));
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				agent_kick(a); /* events lost: look at all */
			for (struct att *t = a->atts; t != NULL; t = t->next)
				if (t->wd == ev->wd) {
					att_poke(t); /* may free t */
					break;
				}
			p += sizeof(*ev) + ev->len;
		}
	}
}

static void att_on_pidfd(void *arg, int fd, uint32_t events)
{
	struct att *t = arg;

	loop_unwatch(t->a->loop, fd);
	close(fd);
	t->pidfd = -1;
	t->runner_gone = true;
	log_info("job=%s attempt=%lld runner exited", t->job,
	         (long long)t->attempt);
	agent_kick(t->a);
}

/* Read state.json; watch the runner's pidfd once its start time checks. */
static void att_find_runner(struct att *t)
{
	struct attempt_state st;
	struct err e = {0};
	int fd;

	if (attempt_state_read(t->dir, &st, &e) < 0)
		return;
	if (t->stale_pid > 0 && st.runner_pid == t->stale_pid &&
	    st.runner_start == t->stale_start)
		return; /* the dead runner's: the new one has not written yet */
	t->runner_pid = st.runner_pid;
	if (!attempt_runner_alive(&st)) {
		t->runner_gone = true;
		return;
	}
	fd = (int)syscall(SYS_pidfd_open, st.runner_pid, 0);
	if (fd < 0 || proc_start_time(st.runner_pid) != st.runner_start) {
		if (fd >= 0)
			close(fd);
		t->runner_gone = true;
		return;
	}
	t->pidfd = fd;
	if (loop_watch(t->a->loop, fd, EPOLLIN, att_on_pidfd, t, &e) < 0)
		log_warn("%s", e.msg);
}

void att_write_lease(struct att *t)
{
	struct err e = {0};
	int64_t wall = now_wall_ms() + (t->lease_mono_ms - now_mono_ms());

	if (t->local || t->lease_mono_ms <= 0)
		return;
	if (attempt_lease_write(t->dir, t->lease_mono_ms, wall, &e) < 0)
		log_warn("job=%s: %s", t->job, e.msg);
}

int att_final_event(struct att *t, const char *reason, const char *message,
                    struct err *e)
{
	struct agent *a = t->a;
	json_t *ev =
	    json_pack("{s:I, s:f, s:s, s:s, s:s?, s:n, s:n}", "seq",
	              (json_int_t)(t->last_seq + 1), "time",
	              (double)now_wall_ms() / 1000.0, "type", "final", "reason",
	              reason, "message", message, "exit_code", "signal");
	char *body = json_dumps(ev, JSON_COMPACT);
	sqlite3_stmt *st = NULL;
	int r;

	if (att_step_find(t->state, ATT_EV_FINAL) == NULL) {
		r = att_request(t, ATT_EV_FINAL, e); /* the error */
		goto out;
	}
	if ((r = db_begin(a->db, e)) < 0)
		goto out;
	if ((r = db_prepare(a->db,
	                    "INSERT OR IGNORE INTO outbox(job, attempt, seq, "
	                    "final, body) SELECT ?, ?, ?, 1, ? WHERE ? = 0",
	                    &st, e)) < 0)
		goto fail;
	sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->attempt);
	sqlite3_bind_int64(st, 3, t->last_seq + 1);
	sqlite3_bind_text(st, 4, body, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, t->local); /* local jobs report nowhere */
	if ((r = db_step_done(a->db, st, e)) < 0 ||
	    (r = db_prepare(
	         a->db,
	         "UPDATE attempts SET last_seq = ?, reason = ?, "
	         "message = ?, state = 'finishing', outputs_done = 1 "
	         "WHERE job = ? AND attempt = ?",
	         &st, e)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, t->last_seq + 1);
	sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, message, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, t->attempt);
	if ((r = db_step_done(a->db, st, e)) < 0 ||
	    (r = db_commit(a->db, e)) < 0)
		goto fail;
	t->last_seq++;
	t->final_seen = true;
	t->outputs_done = true;
	att_request(t, ATT_EV_FINAL, e); /* the row says finishing */
	t->preparing = false;
	agent_kick(a);
	goto out;
fail:
	db_rollback(a->db);
out:
	free(body);
	json_decref(ev);
	return r;
}

void att_cancel(struct att *t, const char *reason)
{
	struct err e = {0};

	if (t->state == ATT_QUEUED) {
		lookahead_cancel(t->a, t->job, t->attempt, reason);
		if (t->snap_call != NULL) {
			t->a->tp->cancel(t->a->t, t->snap_call);
			t->snap_call = NULL;
		}
		if (t->not_current || t->local) {
			att_request(t, ATT_EV_DROPPED, &e); /* frees t */
		} else if (att_final_event(t, reason,
		                           "cancelled before it "
		                           "started",
		                           &e) < 0) {
			log_error("job=%s: %s", t->job, e.msg);
		}
		return;
	}
	if (t->state != ATT_RUNNING)
		return;
	log_info("job=%s attempt=%lld cancel (%s)", t->job,
	         (long long)t->attempt, reason);
	if (attempt_cancel_write(t->dir, reason, t->a->conf.kill_grace_ms, &e) <
	    0)
		log_error("job=%s: %s", t->job, e.msg);
	if (t->runner_pid > 0 && !t->runner_gone && t->pidfd >= 0)
		kill(t->runner_pid, SIGUSR1);
}

/* The runner ended without a final event: start it again (it re-attaches
 * to the job) unless it left result.json or used its restarts; else the
 * attempt is lost. */
static void att_runner_lost(struct att *t, bool have_result)
{
	struct err e = {0};
	char msg[1400];
	int r = have_result ? 0 : restart_runner(t, &e);

	if (r > 0)
		return;
	if (r < 0)
		snprintf(msg, sizeof(msg),
		         "runner exited without a result; starting it again "
		         "failed: %s",
		         e.msg);
	else if (t->runner_restarts > 0)
		snprintf(msg, sizeof(msg),
		         "runner exited without a result after %d restarts "
		         "(the limit)",
		         t->runner_restarts);
	else
		snprintf(msg, sizeof(msg), "runner exited without a result");
	log_warn("job=%s attempt=%lld lost: %s", t->job, (long long)t->attempt,
	         msg);
	if (att_final_event(t, "lost", msg, &e) < 0)
		log_error("job=%s: %s", t->job, e.msg);
}

static void att_check_finished(struct att *t)
{
	struct agent *a = t->a;
	bool have_result = attempt_result_exists(t->dir);
	struct err e = {0};

	if (t->runner_pid == 0 && !have_result && !t->runner_gone) {
		att_find_runner(t);
		if (t->runner_pid == 0 && t->launched_mono > 0 &&
		    now_mono_ms() - t->launched_mono > a->conf.runner_start_ms)
			t->runner_gone = true;
	}
	if (!have_result && !t->runner_gone)
		return;
	if (outbox_tail(t, &e) < 0)
		log_warn("job=%s: %s", t->job, e.msg);
	if (!t->final_seen) {
		att_runner_lost(t, have_result);
		return;
	}
	if (att_request(t, ATT_EV_ENDED, &e) < 0)
		log_error("%s", e.msg);
	log_info("job=%s attempt=%lld finished", t->job, (long long)t->attempt);
	agent_kick(a);
}

void att_poke(struct att *t)
{
	struct agent *a = t->a;
	struct err e = {0};

	t->poke_due = false; /* this is the poke asked for */

	if (t->state == ATT_RUNNING)
		att_check_finished(t);
	if (t->state == ATT_QUEUED || t->state == ATT_DONE)
		return;
	if (t->local) {
		if (t->state == ATT_FINISHING)
			att_request(t, ATT_EV_REPORTED, &e); /* frees t */
		return;
	}
	if (t->state == ATT_RUNNING && outbox_tail_due(t) &&
	    outbox_tail(t, &e) < 0)
		log_warn("job=%s: %s", t->job, e.msg);
	if (!conn_usable(a))
		return;
	shipper_kick(t);
	if (t->state == ATT_FINISHING) {
		checkpoint_kick(t);
		outputs_kick(t);
	}
	outbox_kick(t);
	if (t->state == ATT_FINISHING &&
	    (t->final_acked || (t->not_current && shipper_done(t)))) {
		if (!t->final_acked)
			outbox_drop(t); /* nobody will take them any more */
		log_info("job=%s attempt=%lld reported", t->job,
		         (long long)t->attempt);
		if (att_request(t, ATT_EV_REPORTED, &e) < 0) /* frees t */
			log_error("%s", e.msg);              /* "job=J: ..." */
		agent_kick(a);
	}
}
