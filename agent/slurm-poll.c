/* slurm-poll.c: the Slurm partitions for the heartbeat (issue 10).
 * slurm_capacity() runs two scontrol commands (up to 10 s each), so a
 * background poller (bgpoll.c) calls it at heartbeat pace and keeps the
 * latest answer; the event loop never waits for scontrol. */
#include "agent/agent.h"
#include "agent/bgpoll.h"
#include "agent/slurm-capacity.h"

#include "common/json.h"
#include "common/log.h"

#include <string.h>

static int slurm_poll_fetch(void *ctx, json_t **out, struct err *e)
{
	(void)ctx;
	return slurm_capacity(out, e);
}

static const struct bgpoll_ops slurm_poll_ops = {
    .what = "slurm capacity",
    .recovered = "scontrol answers again",
    .fetch = slurm_poll_fetch,
};

static bool slurm_poll_wanted(const struct agent *a)
{
	const char *m = a->conf.slurm_capacity;

	/* auto: Slurm is this node's business only when configured so */
	if (m == NULL || strcmp(m, "auto") == 0)
		return a->cap.slurm &&
		       ((a->conf.default_launcher != NULL &&
		         strcmp(a->conf.default_launcher, "slurm") == 0) ||
		        a->conf.slurm_partition != NULL);
	return strcmp(m, "on") == 0;
}

int slurm_poll_start(struct agent *a, struct err *e)
{
	int64_t period =
	    a->conf.heartbeat_ms > 1000 ? a->conf.heartbeat_ms : 1000;

	if (!slurm_poll_wanted(a))
		return 0;
	if ((a->slurm = bgpoll_start(&slurm_poll_ops, NULL, period, e)) == NULL)
		return -1;
	log_info("slurm capacity: reported every %lld ms", (long long)period);
	return 0;
}

void slurm_poll_stop(struct agent *a)
{
	bgpoll_stop(a->slurm);
	a->slurm = NULL;
}

json_t *slurm_poll_capacity(struct agent *a)
{
	json_t *cap = capacity_json(&a->cap), *parts;

	spark_poll_add(a, cap); /* spark-poll.c */
	if ((parts = bgpoll_latest(a->slurm)) != NULL)
		json_object_set_new(cap, "slurm",
		                    json_pack("{s:o, s:s}", "partitions", parts,
		                              "default_launcher",
		                              a->conf.default_launcher
		                                  ? a->conf.default_launcher
		                                  : "sandbox"));
	return cap;
}

char *slurm_poll_fingerprint(const json_t *cap)
{
	json_t *j = json_deep_copy(cap);
	char *text;

	json_object_del(j, "disk"); /* free disk moves all the time */
	text = json_dump_canon(j);
	json_decref(j);
	return text;
}
