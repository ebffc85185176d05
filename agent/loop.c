/* loop.c: epoll and monotonic timers. */
#include "agent/loop.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct loop_watch {
	loop_fd_fn fn;
	void *arg;
	bool used;
};

struct loop_timer {
	struct loop *l;
	int64_t due; /* CLOCK_MONOTONIC ms; -1 disarmed */
	loop_timer_fn fn;
	void *arg;
	struct loop_timer *next, *prev;
};

struct loop {
	int epfd;
	struct loop_watch *w;
	int nw;
	struct loop_timer *timers;
	uint64_t wakeups;
};

int loop_new(struct loop **out, struct err *e)
{
	struct loop *l = xcalloc(1, sizeof(*l));

	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return err_sys(e, TERR_IO, "epoll_create1");
	}
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	while (l->timers != NULL)
		loop_timer_free(l->timers);
	close(l->epfd);
	free(l->w);
	free(l);
}

int loop_watch(struct loop *l, int fd, uint32_t events, loop_fd_fn fn,
               void *arg, struct err *e)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	int op;

	if (fd >= l->nw) {
		int n = fd + 64;
		l->w = realloc(l->w, (size_t)n * sizeof(*l->w));
		if (l->w == NULL)
			abort();
		memset(l->w + l->nw, 0, (size_t)(n - l->nw) * sizeof(*l->w));
		l->nw = n;
	}
	op = l->w[fd].used ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0) {
		if (op == EPOLL_CTL_MOD && errno == ENOENT)
			op = EPOLL_CTL_ADD;
		else if (op == EPOLL_CTL_ADD && errno == EEXIST)
			op = EPOLL_CTL_MOD;
		else
			return err_sys(e, TERR_IO, "epoll_ctl fd %d", fd);
		if (epoll_ctl(l->epfd, op, fd, &ev) < 0)
			return err_sys(e, TERR_IO, "epoll_ctl fd %d", fd);
	}
	l->w[fd].fn = fn;
	l->w[fd].arg = arg;
	l->w[fd].used = true;
	return 0;
}

void loop_unwatch(struct loop *l, int fd)
{
	if (fd < 0 || fd >= l->nw || !l->w[fd].used)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->w[fd].used = false;
}

struct loop_timer *loop_timer_new(struct loop *l, loop_timer_fn fn, void *arg)
{
	struct loop_timer *t = xcalloc(1, sizeof(*t));

	t->l = l;
	t->due = -1;
	t->fn = fn;
	t->arg = arg;
	t->next = l->timers;
	if (l->timers != NULL)
		l->timers->prev = t;
	l->timers = t;
	return t;
}

void loop_timer_set(struct loop_timer *t, int64_t delay_ms)
{
	t->due = delay_ms < 0 ? -1 : now_mono_ms() + delay_ms;
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t->due >= 0;
}

void loop_timer_free(struct loop_timer *t)
{
	if (t == NULL)
		return;
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		t->l->timers = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	free(t);
}

static int64_t loop_next_due(struct loop *l)
{
	int64_t best = -1;

	for (struct loop_timer *t = l->timers; t != NULL; t = t->next)
		if (t->due >= 0 && (best < 0 || t->due < best))
			best = t->due;
	return best;
}

/* Fire every due timer; a timer may re-arm or free itself or others. */
static void loop_fire_timers(struct loop *l)
{
	int64_t now = now_mono_ms();
	bool again = true;

	while (again) {
		again = false;
		for (struct loop_timer *t = l->timers; t != NULL; t = t->next) {
			if (t->due >= 0 && t->due <= now) {
				t->due = -1;
				t->fn(t->arg);
				again = true;
				break;
			}
		}
	}
}

int loop_run_once(struct loop *l, struct err *e)
{
	struct epoll_event ev[32];
	int64_t due = loop_next_due(l), timeout = -1;
	int n;

	if (due >= 0) {
		timeout = due - now_mono_ms();
		if (timeout < 0)
			timeout = 0;
		if (timeout > 3600 * 1000)
			timeout = 3600 * 1000;
	}
	n = epoll_wait(l->epfd, ev, 32, (int)timeout);
	l->wakeups++;
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return err_sys(e, TERR_IO, "epoll_wait");
	}
	for (int i = 0; i < n; i++) {
		int fd = ev[i].data.fd;
		if (fd < l->nw && l->w[fd].used)
			l->w[fd].fn(l->w[fd].arg, fd, ev[i].events);
	}
	loop_fire_timers(l);
	return 0;
}

uint64_t loop_wakeups(const struct loop *l)
{
	return l->wakeups;
}
