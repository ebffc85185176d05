/* agentd.c: the daemon: start-up, the event loop, signals, drain. */
#include "agent/agent.h"
#include "agent/creds.h"
#include "agent/db.h"
#include "agent/harden.h"
#include "agent/lifecycle.h"
#include "agent/metrics.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"
#include "docker/docker.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

void agent_note(struct agent *a, const char *key, const char *fmt, ...)
{
	char buf[1024];
	struct err e = {0};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (db_meta_set(a->db, key, buf, &e) < 0)
		log_warn("%s", e.msg);
}

void agent_kick(struct agent *a)
{
	loop_timer_set(a->sched_timer, 0);
}

static void agent_handback_done(void *arg, const struct tp_reply *rep)
{
	struct att *t = arg;
	struct agent *a = t->a;
	struct err e = {0};

	t->ev_call = NULL;
	if (rep->code < 0 && conn_failed(a, rep, "handback"))
		return;
	if (rep->code < 0)
		log_warn("job=%s handback: %s", t->job, rep->err.msg);
	else
		log_info("job=%s attempt=%lld handed back", t->job,
		         (long long)t->attempt);
	att_request(t, ATT_EV_DROPPED, &e); /* frees t */
	agent_kick(a);
}

/* Drained: the last poll tells the workspace that this agent exits (it
 * shows the agent offline and gives the jobs still assigned to it to
 * others at once); true once answered, or when it cannot be told. */
static bool agent_drain_told(struct agent *a, bool gave_up)
{
	int64_t now = now_mono_ms();

	if (a->lease_timer == NULL || a->agent_id == NULL || gave_up ||
	    (a->lease_told_acked & LEASE_TOLD_EXIT))
		return true;
	if (!a->exiting) {
		a->exiting = true;
		a->exit_since_mono = now;
		lease_tell(a);
	}
	if (!conn_usable(a) ||
	    now - a->exit_since_mono > a->conf.kill_grace_ms) {
		log_warn("drain: exiting without telling the workspace (%s)",
		         conn_usable(a) ? "no answer within kill_grace"
		                        : "it is unreachable");
		return true;
	}
	return false;
}

/* Draining: hand queued workspace jobs back; true when nothing is left.
 * Past kill_grace, counted from the end of the last running attempt, only
 * running attempts are waited for (harden.c). */
static bool agent_drain_step(struct agent *a)
{
	struct err e = {0};
	bool left = false, overdue, gave_up = false;

	/* kill_grace counts from the end of the last running attempt: one
	 * that finishes late in the drain still gets the whole grace for its
	 * final event to be answered */
	for (struct att *t = a->atts; t != NULL; t = t->next)
		if (t->state == ATT_RUNNING)
			a->drain_since_mono = now_mono_ms();
	overdue = harden_drain_overdue(a);
	for (struct att *t = a->atts; t != NULL; t = t->next) {
		if (t->local && t->state == ATT_QUEUED)
			continue;
		if (t->state == ATT_QUEUED && !t->local && conn_usable(a) &&
		    t->ev_call == NULL && t->snap_call == NULL) {
			if (a->tp->handback(a->t, t->job, t->attempt,
			                    agent_handback_done, t, &t->ev_call,
			                    &e) < 0)
				log_warn("handback: %s", e.msg);
		}
		if (a->auth_failed && t->state != ATT_RUNNING)
			continue;
		if (overdue && t->state != ATT_RUNNING) {
			gave_up = true;
			continue;
		}
		left = true;
	}
	/* A poll in flight that offered room may still bring a job (the
	 * workspace hands it to the held request): wait for its reply, for
	 * kill_grace at most (a hung workspace must not hold the exit). */
	if (a->lease_call != NULL && a->lease_room_sent > 0) {
		gave_up = gave_up || overdue;
		left = left || !overdue;
	}
	if (!left && gave_up)
		log_warn("drain: kill_grace passed without the workspace "
		         "answering; queued and finishing attempts stay in "
		         "agent.db for the next start");
	return !left && agent_drain_told(a, gave_up);
}

/* One scheduling pass: move every attempt along, start what fits. */
static void agent_tick(void *arg)
{
	struct agent *a = arg;
	struct att *t, *next;

	for (t = a->atts; t != NULL; t = next) {
		next = t->next;
		if (t->state == ATT_QUEUED && t->preparing &&
		    t->snap_call == NULL && conn_usable(a))
			t->preparing = false;
		att_poke(t);
	}
	queue_schedule(a);
	lookahead_kick(a);
	if (a->draining && agent_drain_step(a)) {
		log_info("drained: no job left; exiting");
		a->quit = true;
	}
}

static void agent_on_signal(void *arg, int fd, uint32_t events)
{
	struct agent *a = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
			if (++a->sigints >= 2) {
				log_info("second SIGINT: stopping now; runners "
				         "keep running");
				a->quit = true;
				break;
			}
			/* fall through */
		case SIGTERM:
			if (!a->draining)
				log_info("draining: no new jobs; waiting for "
				         "running ones");
			a->draining = true;
			lease_tell(a);
			agent_kick(a);
			break;
		case SIGQUIT:
			log_info("stopping now; runners keep running");
			a->quit = true;
			break;
		case SIGHUP:
			reload_config(a);
			recovery_load(a, NULL);
			break;
		case SIGUSR2:
			recovery_load(a, NULL);
			break;
		}
	}
}

static void agent_on_inotify(void *arg, int fd, uint32_t events)
{
	att_on_inotify(arg, fd);
}

static void agent_on_http_fd(void *arg, int fd, uint32_t events)
{
	struct agent *a = arg;

	a->tp->on_fd(a->t, fd, http_watch_from_epoll(events));
}

static int agent_http_watch(void *ctx, int fd, int what)
{
	struct agent *a = ctx;
	uint32_t ev = 0;

	if (what == 0) {
		loop_unwatch(a->loop, fd);
		return 0;
	}
	if (what & HTTP_WATCH_IN)
		ev |= EPOLLIN;
	if (what & HTTP_WATCH_OUT)
		ev |= EPOLLOUT;
	return loop_watch(a->loop, fd, ev, agent_on_http_fd, a, NULL);
}

static void agent_http_timer(void *ctx, int64_t ms)
{
	struct agent *a = ctx;

	loop_timer_set(a->http_timer, ms);
}

static void agent_on_http_timer(void *arg)
{
	struct agent *a = arg;

	a->tp->on_timer(a->t);
}

static int agent_signals(struct agent *a, struct err *e)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return err_sys(e, TERR_IO, "sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	a->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->sig_fd < 0)
		return err_sys(e, TERR_IO, "signalfd");
	return loop_watch(a->loop, a->sig_fd, EPOLLIN, agent_on_signal, a, e);
}

/* Load the credentials, or decide to register. */
static int agent_identity(struct agent *a, struct err *e)
{
	struct creds c = {0};
	int r = creds_load(a->conf.state_dir, &c, e);

	if (r == TERR_NOTFOUND || (r == 0 && a->re_register)) {
		creds_free(&c);
		err_clear(e);
		return 0; /* register on the first lease turn */
	}
	if (r < 0)
		return r;
	if (c.workspace != NULL &&
	    strcmp(c.workspace, a->conf.workspace) != 0) {
		r = err_set(e, TERR_CONFLICT,
		            "this node is registered with %s, not %s; start "
		            "with --re-register to attach it to the new "
		            "workspace",
		            c.workspace, a->conf.workspace);
		creds_free(&c);
		return r;
	}
	a->agent_id = c.agent_id;
	a->secret = c.secret;
	c.agent_id = c.secret = NULL;
	creds_free(&c);
	a->tp->set_token(a->t, a->secret);
	agent_note(a, "agent_id", "%s", a->agent_id);
	return 0;
}

static int agent_transport(struct agent *a, struct err *e)
{
	struct http_loop_hooks h = {
	    .ctx = a, .watch = agent_http_watch, .timer = agent_http_timer};
	struct transport_config tc = {
	    .url = a->conf.workspace,
	    .ca_file = a->conf.ca_file,
	    .proxy = a->conf.proxy,
	    .no_proxy = a->conf.no_proxy,
	    .connect_timeout_ms = a->conf.connect_timeout_ms,
	    .user_agent = "tether-agent/" TETHER_VERSION};

	agent_conf_ssh(&a->conf, &tc);
	a->tp = transport_for_url(a->conf.workspace, e);
	if (a->tp == NULL)
		return e ? e->code : TERR_INVAL;
	a->http_timer = loop_timer_new(a->loop, agent_on_http_timer, a);
	return a->tp->open(&tc, &h, &a->t, e);
}

static bool agent_att_known(void *arg, const char *job, int64_t attempt)
{
	return att_find(arg, job, attempt) != NULL;
}

/* Containers of this state dir whose attempt agent.db no longer knows (a
 * crash between removing the attempt and its container): remove them.
 * Only when the engine answered the capacity probe a moment ago (2 s
 * bound), so a dead engine costs nothing; never fatal. */
static void agent_remove_orphans(struct agent *a)
{
	struct err e = {0};
	int n = 0;

	if (a->cap.docker[0] == '\0' || a->conf.docker_socket == NULL)
		return;
	if (docker_remove_orphans(a->conf.docker_socket, a->conf.state_dir,
	                          agent_att_known, a, &n, &e) < 0)
		log_warn("orphan containers: %s", e.msg);
	else if (n > 0)
		log_info("removed %d orphan container%s", n, n == 1 ? "" : "s");
}

static int agent_setup(struct agent *a, struct err *e)
{
	char *dbp = xasprintf("%s/agent.db", a->conf.state_dir);
	int r;

	srandom((unsigned)(now_mono_ms() ^ getpid()));
	/* Signals first: a local command may signal us once the lock is
	 * ours. */
	if ((r = loop_new(&a->loop, e)) < 0 || (r = agent_signals(a, e)) < 0 ||
	    (r = mkdir_p(a->conf.state_dir, 0700, e)) < 0 ||
	    (r = creds_lock_take(a->conf.state_dir, &a->lock_fd, e)) < 0 ||
	    (r = harden_db_open(dbp, &a->db, e)) < 0 ||
	    (r = capacity_detect(&a->conf, &a->cap, e)) < 0)
		goto out;
	chmod(a->conf.state_dir, 0700);
	a->runner_path = launch_find_runner(&a->conf);
	a->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (a->ino_fd < 0) {
		r = err_sys(e, TERR_IO, "inotify_init1");
		goto out;
	}
	if ((r = loop_watch(a->loop, a->ino_fd, EPOLLIN, agent_on_inotify, a,
	                    e)) < 0)
		goto out;
	a->sched_timer = loop_timer_new(a->loop, agent_tick, a);
	a->hk_timer = loop_timer_new(a->loop, housekeeping_run, a);
	loop_timer_set(a->hk_timer, 0);
	if ((r = preempt_init(a, e)) < 0 || (r = slurm_poll_start(a, e)) < 0 ||
	    (r = spark_poll_start(a, e)) < 0)
		goto out;
	conn_init(a);
	if ((r = metrics_agent_open(a, e)) < 0)
		goto out;
	if (a->conf.workspace != NULL &&
	    ((r = agent_transport(a, e)) < 0 || (r = agent_identity(a, e)) < 0))
		goto out;
	agent_note(a, "auth_error", "%s", "");
	agent_note(a, "conn_error", "%s", "");
	if ((r = recovery_load(a, e)) == 0)
		agent_remove_orphans(a);
out:
	free(dbp);
	return r;
}

void agent_free(struct agent *a)
{
	while (a->atts != NULL)
		att_remove(a, a->atts);
	if (a->tp != NULL && a->t != NULL) {
		if (a->lease_call != NULL)
			a->tp->cancel(a->t, a->lease_call);
		if (a->reg_call != NULL)
			a->tp->cancel(a->t, a->reg_call);
		a->tp->close(a->t);
	}
	preempt_free(a);
	slurm_poll_stop(a);
	spark_poll_stop(a);
	lookahead_free(a);
	loop_free(a->loop);
	db_close(a->db);
	if (a->ino_fd >= 0)
		close(a->ino_fd);
	if (a->sig_fd >= 0)
		close(a->sig_fd);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	free(a->agent_id);
	if (a->secret != NULL)
		freezero_str(a->secret);
	free(a->runner_path);
	free(a->cap_pending);
	agent_conf_free(&a->conf);
}

int agent_run(struct agent *a, struct err *e)
{
	int r;

	a->lock_fd = a->sig_fd = a->ino_fd = -1;
	if ((r = agent_setup(a, e)) < 0)
		return r;
	log_info("tether-agent %s started: state %s, %g CPUs, %lld bytes, "
	         "%d GPUs, runner %s",
	         TETHER_VERSION, a->conf.state_dir, a->cap.cpus,
	         (long long)a->cap.memory, a->cap.ngpus, a->runner_path);
	if (a->conf.workspace != NULL)
		lease_start(a);
	else
		log_info("no workspace configured: local jobs only");
	while (!a->quit)
		if ((r = loop_run_once(a->loop, e)) < 0)
			return r;
	metrics_close();
	if (a->auth_failed && a->agent_id == NULL)
		return err_set(e, TERR_AUTH, "not registered");
	return 0;
}
