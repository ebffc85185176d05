/* cmd-rotate.c: `tether-agent rotate-credential`: get a new secret
 * (POST /agents/rotate), store it, then make one call with it so the
 * workspace revokes the old one.  A running agent that then gets 401 with
 * the old secret re-reads the credentials file and carries on. */
#include "agent/cmd.h"
#include "agent/creds.h"
#include "agent/loop.h"

#include "common/err.h"
#include "common/util.h"
#include "transport/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

struct rot {
	struct loop *loop;
	struct loop_timer *timer;
	const struct transport_ops *tp;
	struct transport *t;
	bool done;
	struct tp_reply rep;
	char *secret;
};

static void rot_fd(void *arg, int fd, uint32_t ev)
{
	struct rot *r = arg;
	int w = ((ev & (EPOLLIN | EPOLLHUP)) ? HTTP_WATCH_IN : 0) |
	        ((ev & EPOLLOUT) ? HTTP_WATCH_OUT : 0) |
	        ((ev & EPOLLERR) ? 4 : 0);

	r->tp->on_fd(r->t, fd, w);
}

static int rot_watch(void *ctx, int fd, int what)
{
	struct rot *r = ctx;
	uint32_t ev = ((what & HTTP_WATCH_IN) ? EPOLLIN : 0) |
	              ((what & HTTP_WATCH_OUT) ? EPOLLOUT : 0);

	if (what == 0) {
		loop_unwatch(r->loop, fd);
		return 0;
	}
	return loop_watch(r->loop, fd, ev, rot_fd, r, NULL);
}

static void rot_timer_set(void *ctx, int64_t ms)
{
	loop_timer_set(((struct rot *)ctx)->timer, ms);
}

static void rot_timer(void *arg)
{
	struct rot *r = arg;

	r->tp->on_timer(r->t);
}

static void rot_done(void *arg, const struct tp_reply *rep)
{
	struct rot *r = arg;
	const char *s = json_string_value(json_object_get(rep->json, "secret"));

	r->done = true;
	r->rep.code = rep->code;
	r->rep.err = rep->err;
	if (s != NULL)
		r->secret = xstrdup(s);
}

static int rot_wait(struct rot *r, struct err *e)
{
	while (!r->done)
		if (loop_run_once(r->loop, e) < 0)
			return e->code;
	r->done = false;
	if (r->rep.code < 0) {
		*e = r->rep.err;
		return r->rep.code;
	}
	return 0;
}

static int rot_run(struct cmd_ctx *c, struct rot *r, struct creds *cr,
                   struct err *e)
{
	struct http_loop_hooks h = {
	    .ctx = r, .watch = rot_watch, .timer = rot_timer_set};
	struct transport_config tc = {.url = cr->workspace,
	                              .ca_file = c->conf.ca_file,
	                              .proxy = c->conf.proxy,
	                              .no_proxy = c->conf.no_proxy};
	json_t *body;
	int ret;

	if ((ret = loop_new(&r->loop, e)) < 0)
		return ret;
	r->timer = loop_timer_new(r->loop, rot_timer, r);
	agent_conf_ssh(&c->conf, &tc);
	if ((r->tp = transport_for_url(cr->workspace, e)) == NULL)
		return e->code;
	if ((ret = r->tp->open(&tc, &h, &r->t, e)) < 0)
		return ret;
	r->tp->set_token(r->t, cr->secret);
	if ((ret = r->tp->rotate(r->t, rot_done, r, NULL, e)) < 0 ||
	    (ret = rot_wait(r, e)) < 0)
		return err_wrap(e, "rotate");
	if (r->secret == NULL)
		return err_set(e, TERR_PROTO, "rotate: reply without secret");
	freezero_str(cr->secret);
	cr->secret = r->secret;
	r->secret = NULL;
	if ((ret = creds_save(c->conf.state_dir, cr, e)) < 0)
		return ret;
	/* The first call with the new secret retires the old one. */
	r->tp->set_token(r->t, cr->secret);
	body = json_pack("{s:i, s:i, s:b, s:[]}", "wait", 0, "queue_room", 0,
	                 "draining", false, "running");
	ret = r->tp->lease(r->t, body, 0, rot_done, r, NULL, e);
	json_decref(body);
	if (ret == 0)
		ret = rot_wait(r, e);
	return ret;
}

static int cmd_rotate_main(struct cmd_ctx *c, int argc, char **argv)
{
	struct creds cr = {0};
	struct rot r = {0};
	struct err e = {0};
	int ret;

	if ((ret = creds_load(c->conf.state_dir, &cr, &e)) < 0 ||
	    cr.workspace == NULL) {
		fprintf(stderr, "tether-agent: not registered: %s\n", e.msg);
		creds_free(&cr);
		return 1;
	}
	ret = rot_run(c, &r, &cr, &e);
	if (ret < 0)
		fprintf(stderr, "tether-agent: %s\n", e.msg);
	else
		printf("credential rotated for %s\n", cr.agent_id);
	if (r.tp != NULL)
		r.tp->close(r.t);
	loop_free(r.loop);
	creds_free(&cr);
	free(r.secret);
	return ret < 0 ? 1 : 0;
}

const struct cmd_entry cmd_rotate = {
    "rotate-credential", "", "replace the agent's secret", cmd_rotate_main};
