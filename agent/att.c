/* att.c: one attempt held in memory: its inotify watch, its runner's
 * pidfd, and the step from running to finishing to done. */
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
	t->state = ATT_FINISHING;
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
			queue_set_state(t->a, t, ATT_DONE, &e);
			att_remove(t->a, t);
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
	char *res = attempt_path(t->dir, ATTEMPT_RESULT);
	bool have_result = access(res, F_OK) == 0;
	struct err e = {0};

	free(res);
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
	if (queue_set_state(a, t, ATT_FINISHING, &e) < 0)
		log_error("job=%s: %s", t->job, e.msg);
	log_info("job=%s attempt=%lld finished", t->job, (long long)t->attempt);
	agent_kick(a);
}

/* Move the attempt along; may free t (call it last). */
void att_poke(struct att *t)
{
	struct agent *a = t->a;
	struct err e = {0};

	if (t->state == ATT_RUNNING)
		att_check_finished(t);
	if (t->state == ATT_QUEUED || t->state == ATT_DONE)
		return;
	if (t->local) {
		if (t->state == ATT_FINISHING) {
			queue_set_state(a, t, ATT_DONE, &e);
			att_remove(a, t);
		}
		return;
	}
	if (t->state == ATT_RUNNING && outbox_tail(t, &e) < 0)
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
		if (queue_set_state(a, t, ATT_DONE, &e) < 0)
			log_error("job=%s: %s", t->job, e.msg);
		log_info("job=%s attempt=%lld reported", t->job,
		         (long long)t->attempt);
		att_remove(a, t);
		agent_kick(a);
	}
}
