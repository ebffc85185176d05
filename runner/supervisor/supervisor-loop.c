/* supervisor-loop.c: the run phase.  One poll loop over the job's output,
 * the launcher's done fd, a signalfd (SIGUSR1: look at `cancel` now) and
 * an inotify watch on the attempt directory (`cancel`, `lease`), waking at
 * least once a second for the lease deadline.  A fence reason sends the
 * stop signal to the whole job, then SIGKILL after the grace period. */
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/logpipe.h"
#include "runner/supervisor/supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct loop {
	struct runner *r;
	struct fence fence;
	int out_fd, done_fd, sig_fd, ino_fd, ino_wd;
	bool out_eof, done;
	struct progress progress;
	struct metrics *metrics;
	const char *stop_reason; /* set once the stop sequence began */
	int64_t kill_at_ms;      /* -1 until stopping */
	bool killed;
	int64_t disk_next_ms; /* when to measure the disk budget next */
	bool pending;         /* last `pending` event said so */
	char pending_reason[64];
};

static int loop_open(struct loop *l, struct err *e)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	l->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (l->sig_fd < 0)
		return err_sys(e, TERR_IO, "signalfd");
	l->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (l->ino_fd < 0)
		return err_sys(e, TERR_IO, "inotify_init1");
	l->ino_wd = inotify_add_watch(l->ino_fd, l->r->dir,
	                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
	if (l->ino_wd < 0)
		return err_sys(e, TERR_IO, "inotify %s", l->r->dir);
	return 0;
}

/* Stop watching and hand the inotify fd to r to be closed last (see
 * runner.h idle_watch_fd): the kernel reaps the watch meanwhile. */
static void loop_unwatch(struct loop *l)
{
	if (l->ino_fd < 0)
		return;
	if (l->ino_wd >= 0)
		inotify_rm_watch(l->ino_fd, l->ino_wd);
	if (l->r->idle_watch_fd >= 0)
		close(l->r->idle_watch_fd);
	l->r->idle_watch_fd = l->ino_fd;
	l->ino_fd = -1;
}

static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* The checkpoint signal of the spec (TERM, INT, USR1, USR2). */
static int checkpoint_signal(const char *name)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {{"INT", SIGINT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};

	for (size_t i = 0; name != NULL && i < sizeof(sigs) / sizeof(sigs[0]);
	     i++)
		if (strcmp(name, sigs[i].name) == 0)
			return sigs[i].sig;
	return SIGTERM;
}

/* Say in the job's log why it is taken for hung. */
static void loop_log_hang(struct loop *l, int64_t now)
{
	struct runner *r = l->r;
	double idle = (double)(now - l->fence.last_output_ms) / 1000.0;

	if (r->has_progress)
		runner_logf(r, "tether",
		            "hung: no new TETHER_PROGRESS value for %.1fs "
		            "(hang_timeout %.1fs; last step=%g)",
		            idle, (double)r->spec->hang_timeout_ms / 1000.0,
		            r->progress);
	else
		runner_logf(r, "tether",
		            "hung: no output for %.1fs (hang_timeout %.1fs)",
		            idle, (double)r->spec->hang_timeout_ms / 1000.0);
}

/* A fence reason arrived: signal the job, arm the SIGKILL deadline.  The
 * spec's checkpoint signal and grace apply to every stop but a timeout
 * without checkpoint.on_timeout (docs/jobspec.md). */
static void loop_begin_stop(struct loop *l, const char *reason, int64_t now)
{
	struct runner *r = l->r;
	struct err e = {0};
	bool ckpt =
	    strcmp(reason, "timed_out") != 0 || r->spec->checkpoint.on_timeout;
	int64_t grace = r->set.kill_grace_ms;
	int sig =
	    ckpt ? checkpoint_signal(r->spec->checkpoint.signal) : SIGTERM;

	if (l->fence.cancel_reason[0] != '\0' && l->fence.cancel_grace_ms >= 0)
		grace = l->fence.cancel_grace_ms;
	if (ckpt && r->spec->checkpoint.grace_ms > 0)
		grace = r->spec->checkpoint.grace_ms;
	/* a preemption notice's window caps the job's own grace */
	if (strcmp(reason, "preempted") == 0 && l->fence.cancel_grace_ms >= 0 &&
	    l->fence.cancel_grace_ms < grace)
		grace = l->fence.cancel_grace_ms;
	l->stop_reason = reason;
	l->kill_at_ms = now + grace;
	if (strcmp(reason, "hung") == 0)
		loop_log_hang(l, now);
	runner_logf(r, "tether", "stopping job (%s): %s, SIGKILL in %.1fs",
	            reason, strsignal(sig), (double)grace / 1000.0);
	if (r->ops->signal(r, sig, &e) < 0)
		log_warn("job=%s signal: %s", r->job_id, e.msg);
}

/* Measure the job's disk use when due; at the budget, stop it at once
 * (SIGKILL: a grace period would let it write on, and a checkpoint needs
 * the disk it has no room for). */
static void loop_disk(struct loop *l, int64_t now)
{
	struct runner *r = l->r;
	int64_t used, took, next;

	if (r->disk_limit <= 0 || l->stop_reason != NULL ||
	    now < l->disk_next_ms)
		return;
	used = runner_disk_usage(r);
	took = now_mono_ms() - now;
	/* a slow walk (a huge tree) is repeated less often: at most a fifth
	 * of the runner's time goes into measuring */
	next =
	    r->set.disk_check_ms > 4 * took ? r->set.disk_check_ms : 4 * took;
	l->disk_next_ms = now_mono_ms() + next;
	if (used < r->disk_limit)
		return;
	if (used == INT64_MAX)
		runner_logf(r, "tether",
		            "disk_limit: directories nested deeper than can be "
		            "measured: stopping the job");
	else
		runner_logf(
		    r, "tether",
		    "disk_limit: the job uses %lld bytes of disk (work, "
		    "outputs, checkpoints, /tmp), its budget is %lld "
		    "bytes (resources.disk or attempt_max_disk): "
		    "stopping it",
		    (long long)used, (long long)r->disk_limit);
	l->stop_reason = "disk_limit";
	l->kill_at_ms = now;
}

/* Report the launcher's queue state when it changed: {"type":
 * "pending", "pending": true, "reason": "Resources"} while the job waits
 * (Slurm PENDING), "pending": false once it runs. */
static void loop_pending(struct loop *l)
{
	struct runner *r = l->r;
	char why[64] = "";
	struct err e = {0};
	bool p;
	json_t *ev;

	if (r->ops->pending == NULL)
		return;
	p = r->ops->pending(r, why, sizeof(why));
	if (p == l->pending && (!p || strcmp(why, l->pending_reason) == 0))
		return;
	l->pending = p;
	snprintf(l->pending_reason, sizeof(l->pending_reason), "%s", why);
	ev = json_pack("{s:s, s:b, s:o}", "type", "pending", "pending", p,
	               "reason", p && why[0] ? json_string(why) : json_null());
	if (runner_event(r, ev, &e) < 0)
		log_warn("job=%s pending event: %s", r->job_id, e.msg);
	json_decref(ev);
}

static void loop_tick(struct loop *l)
{
	int64_t now = now_mono_ms();
	struct err e = {0};
	const char *why;

	progress_report(&l->progress, l->r, now, false);
	metrics_report(l->metrics, now, false);
	loop_pending(l);
	if (l->stop_reason == NULL && (why = fence_check(&l->fence, now)))
		loop_begin_stop(l, why, now);
	loop_disk(l, now);
	if (l->stop_reason != NULL && !l->killed && now >= l->kill_at_ms) {
		l->killed = true;
		if (l->r->ops->kill(l->r, &e) < 0)
			log_warn("job=%s kill: %s", l->r->job_id, e.msg);
	}
}

static int loop_timeout(const struct loop *l)
{
	int64_t now = now_mono_ms();
	int w = fence_wait_ms(&l->fence, now);
	int pw = progress_wait_ms(&l->progress, now);
	int mw = metrics_wait_ms(l->metrics, now);

	if (pw < w)
		w = pw;
	if (mw < w)
		w = mw;
	if (l->r->disk_limit > 0 && l->stop_reason == NULL) {
		int64_t d = l->disk_next_ms - now;
		if (d < w)
			w = d < 0 ? 0 : (int)d;
	}

	if (l->stop_reason != NULL && !l->killed) {
		int64_t k = l->kill_at_ms - now;
		if (k < w)
			w = k < 0 ? 0 : (int)k;
	}
	return w;
}

static void loop_signal(struct loop *l)
{
	struct signalfd_siginfo si;

	while (read(l->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			fence_reload(&l->fence, l->r->dir);
		} else if (l->fence.cancel_reason[0] == '\0') {
			/* SIGTERM/SIGINT to the runner itself: cancel. */
			snprintf(l->fence.cancel_reason,
			         sizeof(l->fence.cancel_reason), "cancelled");
		}
	}
}

/* One read of the job's output into the log; the hang clock restarts on
 * output, or only on a new progress value once the job printed one. */
static int loop_pump(struct loop *l, struct err *e)
{
	struct logpipe *lp = l->r->job_log;
	bool advanced;
	ssize_t n;

	n = read(l->out_fd, lp->buf, sizeof(lp->buf));
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		return err_sys(e, TERR_IO, "read job output");
	}
	if (n == 0) {
		l->out_eof = true;
		return logpipe_finish(lp, e);
	}
	advanced = progress_feed(&l->progress, l->r, lp->buf, (size_t)n);
	metrics_feed(l->metrics, lp->buf, (size_t)n);
	if (!l->r->has_progress || advanced)
		l->fence.last_output_ms = now_mono_ms();
	return logpipe_write(lp, lp->buf, (size_t)n, e);
}

/* The launcher's TETHER_METRIC lines (the TensorBoard reader). */
static void loop_metrics_fd(struct loop *l)
{
	char buf[16384];
	ssize_t n = read(l->r->metrics_fd, buf, sizeof(buf));

	if (n > 0) {
		metrics_feed_aux(l->metrics, buf, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(l->r->metrics_fd);
		l->r->metrics_fd = -1;
	}
}

static int loop_run(struct loop *l, struct err *e)
{
	struct pollfd p[5];
	int rc;

	while (!(l->out_eof && l->done && l->r->metrics_fd <= 0)) {
		int n = 0, io = -1, id = -1, im = -1;
		p[n++] = (struct pollfd){l->sig_fd, POLLIN, 0};
		p[n++] = (struct pollfd){l->ino_fd, POLLIN, 0};
		if (!l->out_eof) {
			io = n;
			p[n++] = (struct pollfd){l->out_fd, POLLIN, 0};
		}
		if (!l->done) {
			id = n;
			p[n++] = (struct pollfd){l->done_fd, POLLIN, 0};
		}
		if (l->r->metrics_fd > 0) {
			im = n;
			p[n++] = (struct pollfd){l->r->metrics_fd, POLLIN, 0};
		}
		if (poll(p, (nfds_t)n, loop_timeout(l)) < 0 && errno != EINTR)
			return err_sys(e, TERR_IO, "poll");
		if (p[0].revents)
			loop_signal(l);
		if (p[1].revents) {
			drain(l->ino_fd);
			fence_reload(&l->fence, l->r->dir);
		}
		if (io >= 0 && p[io].revents) {
			if ((rc = loop_pump(l, e)) < 0)
				return rc;
		}
		if (id >= 0 && p[id].revents)
			l->done = true;
		if (im >= 0 && p[im].revents)
			loop_metrics_fd(l);
		loop_tick(l);
	}
	return 0;
}

int supervisor_run_job(struct runner *r, struct launch_exit *ex,
                       const char **stop_reason, struct err *e)
{
	struct loop l = {
	    .r = r, .sig_fd = -1, .ino_fd = -1, .ino_wd = -1, .kill_at_ms = -1};
	int rc;

	fence_init(&l.fence);
	fence_reload(&l.fence, r->dir);
	l.metrics = metrics_new(r);
	*stop_reason = NULL;
	if ((rc = loop_open(&l, e)) < 0)
		goto out;
	if (r->reattach) { /* before anything else goes into the log */
		if ((rc = r->ops->reattach(r, &l.out_fd, &l.done_fd, e)) < 0) {
			err_wrap(e, "the runner was restarted while the job "
			            "ran; re-attach");
			goto out;
		}
	} else {
		if ((*stop_reason = fence_check(&l.fence, now_mono_ms())))
			goto out; /* cancelled or lost before the job started */
		if ((rc = r->ops->start(r, &l.out_fd, &l.done_fd, e)) < 0) {
			err_wrap(e, "start");
			goto out;
		}
		r->run_started_ms = now_mono_ms();
	}
	/* from the attempt's start: the source and env phases count too */
	l.fence.timeout_deadline_ms = runner_timeout_deadline(r);
	l.fence.hang_ms = r->spec->hang_timeout_ms;
	l.fence.last_output_ms = now_mono_ms();
	/* state.json (job pid, cgroup, launcher_ref) before the event, so a
	 * reader who saw `started` finds them. */
	runner_save_state(r, e);
	if (!r->reattach) { /* else the earlier runner sent it */
		json_t *ev = json_pack("{s:s, s:I}", "type", "started", "pid",
		                       (json_int_t)r->state.job_pid);
		runner_event(r, ev, e);
		json_decref(ev);
	}
	err_clear(e);
	rc = loop_run(&l, e);
	loop_unwatch(&l); /* the job ended: nothing left to watch for */
	if (rc < 0) {
		struct err ke = {0};
		r->ops->kill(r, &ke); /* never leave a job unsupervised */
		goto out;
	}
	metrics_finish(l.metrics);
	progress_report(&l.progress, r, now_mono_ms(), true);
	rc = r->ops->collect(r, ex, e);
	*stop_reason = l.stop_reason;
out:
	if (l.sig_fd >= 0)
		close(l.sig_fd);
	loop_unwatch(&l);
	if (r->metrics_fd > 0)
		close(r->metrics_fd);
	r->metrics_fd = -1;
	metrics_free(l.metrics);
	return rc;
}
