/* conn.c: is the workspace reachable?  One backoff for the whole agent:
 * after a network failure every channel waits, and the lease poll (or the
 * registration) is the one probe, retried with exponential backoff and
 * jitter, capped by backoff_max, honouring Retry-After. */
#include "agent/agent.h"
#include "agent/creds.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

int64_t conn_backoff_ms(int failures, int64_t min_ms, int64_t max_ms,
                        int64_t retry_after_ms)
{
	int64_t d = min_ms, half;

	for (int i = 1; i < failures && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* "equal jitter": half fixed, half random, so gaps still grow. */
	half = d / 2;
	d = half + (half > 0 ? (int64_t)(random() % (half + 1)) : 0);
	if (retry_after_ms > d)
		d = retry_after_ms;
	return d;
}

bool conn_usable(struct agent *a)
{
	return !a->conn_down && !a->auth_failed;
}

static void conn_retry(void *arg)
{
	struct agent *a = arg;

	lease_poll_soon(a, 0);
}

void conn_init(struct agent *a)
{
	a->conn_timer = loop_timer_new(a->loop, conn_retry, a);
}

bool conn_failed(struct agent *a, const struct tp_reply *rep, const char *what)
{
	int64_t delay;

	if (rep->code == TERR_AUTH) {
		conn_auth_failed(a, rep);
		return false;
	}
	if (rep->code != TERR_NET && rep->code != TERR_TIMEOUT &&
	    rep->code != TERR_BUSY && rep->code != TERR_FAIL)
		return false;
	if (a->conn_down && loop_timer_armed(a->conn_timer))
		return true; /* a probe is already scheduled */
	a->conn_down = true;
	a->lease_quick = true;
	a->conn_failures++;
	delay = conn_backoff_ms(a->conn_failures, a->conf.backoff_min_ms,
	                        a->conf.backoff_max_ms, rep->retry_after_ms);
	log_warn("workspace unreachable (%s: %s); retry in %lld ms "
	         "(failure %d)",
	         what, rep->err.msg, (long long)delay, a->conn_failures);
	agent_note(a, "conn_error", "%s: %s", what, rep->err.msg);
	loop_timer_set(a->conn_timer, delay);
	return true;
}

void conn_ok(struct agent *a)
{
	bool was_down = a->conn_down;

	a->conn_failures = 0;
	a->conn_down = false;
	loop_timer_set(a->conn_timer, -1);
	if (was_down) {
		log_info("workspace reachable again");
		agent_note(a, "conn_error", "%s", "");
		agent_kick(a);
	}
}

void conn_auth_failed(struct agent *a, const struct tp_reply *rep)
{
	struct creds c = {0};
	struct err e = {0};

	if (a->auth_failed)
		return;
	/* A rotate-credential may have replaced the secret on disk. */
	if (creds_load(a->conf.state_dir, &c, &e) == 0 && a->secret &&
	    strcmp(c.secret, a->secret) != 0) {
		log_info("credentials changed on disk; using the new secret");
		freezero_str(a->secret);
		a->secret = c.secret;
		c.secret = NULL;
		a->tp->set_token(a->t, a->secret);
		creds_free(&c);
		lease_poll_soon(a, 0);
		return;
	}
	creds_free(&c);
	a->auth_failed = true;
	log_error("workspace refused this agent's credential (%s): stopped "
	          "leasing; running jobs continue until their lease "
	          "deadlines; re-register with --re-register and a new token",
	          rep->err.msg);
	agent_note(a, "auth_error", "workspace refused the credential: %s",
	           rep->err.msg);
	if (a->lease_call != NULL) {
		a->tp->cancel(a->t, a->lease_call);
		a->lease_call = NULL;
	}
	loop_timer_set(a->lease_timer, -1);
	loop_timer_set(a->conn_timer, -1);
}
