/* fuzz_lease_reply.c: the agent's handling of a lease reply, the one reply
 * through which the workspace hands it jobs, renewals, cancels, lost
 * attempts and drain (docs/protocol.md, POST /agents/lease).
 *
 * lease_apply() is static and works on the daemon's state, so this target
 * compiles agent/lease.c into itself and gives it a real (in-memory)
 * agent.db, a loop and a capacity; it then parses the input the way the
 * transport does (json_parse, depth 32) and applies it, then builds the
 * next heartbeat body from whatever the reply created.  Attempts created
 * here stay queued: no runner is started. */
#include "agent/lease.c"

#include "agent/db.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static struct agent *fuzz_agent(void)
{
	static struct agent a;
	static bool ready;
	struct err e = {0};

	if (ready)
		return &a;
	log_set_level(LOG_ERROR);
	if (conf_defaults(agent_conf_table, &a.conf, &e) < 0 ||
	    db_open(":memory:", &a.db, &e) < 0 || loop_new(&a.loop, &e) < 0)
		abort();
	a.sched_timer = loop_timer_new(a.loop, NULL, NULL);
	a.cap.cpus = 4;
	a.cap.memory = 8LL << 30;
	a.cap.ngpus = 1;
	ready = true;
	return &a;
}

static void fuzz_reset(struct agent *a)
{
	struct err e = {0};

	while (a->atts != NULL)
		att_remove(a, a->atts);
	a->draining = false;
	if (db_exec(a->db, "DELETE FROM attempts; DELETE FROM outbox;", &e) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct agent *a = fuzz_agent();
	json_t *rep = NULL, *body;

	if (size > (1 << 20))
		return 0;
	if (json_parse((const char *)data, size, 32, &rep, NULL) == 0) {
		lease_apply(a, rep, now_mono_ms());
		/* A second delivery of the same reply changes nothing. */
		lease_apply(a, rep, now_mono_ms());
		body = lease_body(a);
		if (body == NULL)
			abort();
		json_decref(body);
		json_decref(rep);
	}
	fuzz_reset(a);
	return 0;
}
