/* preempt.c: preemption notices (docs/checkpointing.md).
 *
 * Sources, by config: the cloud's scheduled-events endpoint
 * (preempt_events_url, polled every preempt_poll; Azure's format: an
 * event with "EventType": "Preempt" and its "NotBefore" time), a file
 * whose appearance means "evicted soon" (preempt_file), and SIGPWR to the
 * agent.  On the first notice the agent drains (no new leases; queued
 * jobs handed back), says `"preempting": true` in its polls, and stops
 * every running attempt with the reason `preempted`: the runner sends the
 * job its checkpoint signal and kills it after the grace, which is capped
 * at two thirds of the notice window so that the upload fits in the rest
 * (checkpoint.c).  When everything is reported the drained agent exits. */
#include "agent/agent.h"
#include "agent/lifecycle.h"

#include "common/attempt.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/http.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define PREEMPT_MAX_REPLY (1 << 20)

struct preempt {
	struct agent *a;
	bool active;
	int sig_fd;
	struct loop_timer *poll_timer, *http_timer;
	struct http_client *http;
	struct http_req *req;
	char *path; /* of the events URL, after the host */
};

bool preempt_active(const struct agent *a)
{
	return a->preempt != NULL && a->preempt->active;
}

/* Stop one running attempt for the notice (cancel file, then SIGUSR1). */
static void preempt_stop(struct att *t, int64_t grace_ms)
{
	struct err e = {0};

	if (attempt_cancel_write(t->dir, "preempted", grace_ms, &e) < 0) {
		log_error("job=%s: %s", t->job, e.msg);
		return;
	}
	if (t->runner_pid > 0 && !t->runner_gone && t->pidfd >= 0)
		kill(t->runner_pid, SIGUSR1);
}

void preempt_notice(struct agent *a, const char *source, int64_t window_ms)
{
	struct preempt *p = a->preempt;
	int64_t grace = window_ms * 2 / 3;
	int n = 0;

	if (p == NULL || p->active)
		return;
	p->active = true;
	if (grace < 1000)
		grace = 1000;
	for (struct att *t = a->atts; t != NULL; t = t->next) {
		if (t->local)
			continue;
		if (t->state == ATT_QUEUED && t->snap_call != NULL) {
			/* a download would start it: hand it back instead */
			a->tp->cancel(a->t, t->snap_call);
			t->snap_call = NULL;
			t->preparing = false;
		}
		if (t->state != ATT_RUNNING)
			continue;
		preempt_stop(t, grace);
		n++;
	}
	log_warn("preemption notice (%s, %.1fs left): no new jobs; %d "
	         "running attempt(s) checkpoint within %.1fs",
	         source, (double)window_ms / 1000.0, n, (double)grace / 1000.0);
	agent_note(a, "preempted", "notice from %s", source);
	a->draining = true;
	lease_tell(a); /* before the attempts' final events */
	agent_kick(a);
}

/* Seconds until an Azure "NotBefore" ("Mon, 19 Sep 2016 18:29:47 GMT");
 * the configured window when it is absent or unreadable. */
static int64_t preempt_window_ms(struct agent *a, const char *not_before)
{
	struct tm tm;
	const char *end;
	int64_t ms;

	memset(&tm, 0, sizeof(tm));
	if (not_before == NULL || not_before[0] == '\0' ||
	    (end = strptime(not_before, "%a, %d %b %Y %H:%M:%S", &tm)) == NULL)
		return a->conf.preempt_window_ms;
	ms = (int64_t)timegm(&tm) * 1000 - now_wall_ms();
	return ms < 0 ? 0 : ms;
}

static void preempt_events_done(void *arg, const struct http_result *res)
{
	struct preempt *p = arg;
	json_t *doc, *ev;
	size_t i;

	p->req = NULL;
	if (res->code < 0 || res->status != 200) {
		log_debug("scheduled events: %s (HTTP %ld)",
		          res->code < 0 ? res->err.msg : "no reply",
		          res->status);
		return;
	}
	doc = json_loadb(res->body, res->body_len, 0, NULL);
	json_array_foreach(json_object_get(doc, "Events"), i, ev)
	{
		const char *type =
		    json_string_value(json_object_get(ev, "EventType"));
		if (type != NULL && strcmp(type, "Preempt") == 0) {
			preempt_notice(
			    p->a, "scheduled events",
			    preempt_window_ms(
			        p->a, json_string_value(
			                  json_object_get(ev, "NotBefore"))));
			break;
		}
	}
	json_decref(doc);
}

static void preempt_poll(void *arg)
{
	struct preempt *p = arg;
	struct agent *a = p->a;
	static const char *const hdrs[] = {"Metadata: true", NULL};
	struct http_request rq = {.method = "GET",
	                          .headers = hdrs,
	                          .upload_fd = -1,
	                          .download_fd = -1,
	                          .max_reply = PREEMPT_MAX_REPLY,
	                          .timeout_ms = 5000,
	                          .done = preempt_events_done,
	                          .arg = p};
	struct err e = {0};

	if (p->active)
		return;
	if (a->conf.preempt_file != NULL &&
	    access(a->conf.preempt_file, F_OK) == 0) {
		preempt_notice(a, a->conf.preempt_file,
		               a->conf.preempt_window_ms);
		return;
	}
	if (p->http != NULL && p->req == NULL) {
		rq.path = p->path;
		if (http_start(p->http, &rq, &p->req, &e) < 0)
			log_warn("scheduled events: %s", e.msg);
	}
	loop_timer_set(p->poll_timer, a->conf.preempt_poll_ms);
}

static void preempt_on_signal(void *arg, int fd, uint32_t events)
{
	struct preempt *p = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si))
		preempt_notice(p->a, "SIGPWR", p->a->conf.preempt_window_ms);
}

static void preempt_on_http_fd(void *arg, int fd, uint32_t events)
{
	struct preempt *p = arg;

	http_on_fd(p->http, fd, http_watch_from_epoll(events));
}

static int preempt_http_watch(void *ctx, int fd, int what)
{
	struct preempt *p = ctx;
	uint32_t ev = 0;

	if (what == 0) {
		loop_unwatch(p->a->loop, fd);
		return 0;
	}
	if (what & HTTP_WATCH_IN)
		ev |= EPOLLIN;
	if (what & HTTP_WATCH_OUT)
		ev |= EPOLLOUT;
	return loop_watch(p->a->loop, fd, ev, preempt_on_http_fd, p, NULL);
}

static void preempt_http_timer(void *ctx, int64_t ms)
{
	struct preempt *p = ctx;

	loop_timer_set(p->http_timer, ms);
}

static void preempt_on_http_timer(void *arg)
{
	struct preempt *p = arg;

	http_on_timer(p->http);
}

/* An HTTP client for the events URL (never through a proxy). */
static int preempt_http(struct preempt *p, const char *url, struct err *e)
{
	const char *host = strstr(url, "://"), *slash;
	struct http_loop_hooks h = {p, preempt_http_watch, preempt_http_timer};
	struct http_opts o = {.no_proxy = "*", .connect_timeout_ms = 2000};
	char *base;
	int r;

	if (host == NULL || (strncmp(url, "http://", 7) != 0 &&
	                     strncmp(url, "https://", 8) != 0))
		return err_set(e, TERR_INVAL,
		               "preempt_events_url '%s': expected http:// or "
		               "https://",
		               url);
	slash = strchr(host + 3, '/');
	base =
	    slash ? xasprintf("%.*s", (int)(slash - url), url) : xstrdup(url);
	p->path = xstrdup(slash ? slash : "/");
	o.base_url = base;
	p->http_timer = loop_timer_new(p->a->loop, preempt_on_http_timer, p);
	r = http_client_new(&o, &h, &p->http, e);
	free(base);
	return r;
}

int preempt_init(struct agent *a, struct err *e)
{
	struct preempt *p = xcalloc(1, sizeof(*p));
	sigset_t set;
	int r;

	p->a = a;
	p->sig_fd = -1;
	a->preempt = p;
	sigemptyset(&set);
	sigaddset(&set, SIGPWR);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return err_sys(e, TERR_IO, "sigprocmask");
	p->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (p->sig_fd < 0)
		return err_sys(e, TERR_IO, "signalfd");
	if ((r = loop_watch(a->loop, p->sig_fd, EPOLLIN, preempt_on_signal, p,
	                    e)) < 0)
		return r;
	if (a->conf.preempt_events_url != NULL &&
	    (r = preempt_http(p, a->conf.preempt_events_url, e)) < 0)
		return r;
	p->poll_timer = loop_timer_new(a->loop, preempt_poll, p);
	if (p->http != NULL || a->conf.preempt_file != NULL)
		loop_timer_set(p->poll_timer, 0);
	return 0;
}

void preempt_free(struct agent *a)
{
	struct preempt *p = a->preempt;

	if (p == NULL)
		return;
	if (p->req != NULL)
		http_cancel(p->http, p->req);
	http_client_free(p->http);
	if (p->sig_fd >= 0) {
		loop_unwatch(a->loop, p->sig_fd);
		close(p->sig_fd);
	}
	loop_timer_free(p->poll_timer);
	loop_timer_free(p->http_timer);
	free(p->path);
	free(p);
	a->preempt = NULL;
}
