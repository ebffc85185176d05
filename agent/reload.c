/* reload.c: SIGHUP re-reads agent.conf (the same file, TETHER_AGENT_*
 * variables and --set pairs the daemon started with).  Keys the daemon
 * reads where it uses them (limits, durations, runner settings for jobs
 * started from now on, log level, capacity overrides, metrics listener)
 * take effect at once; a changed key that was consumed at start (state
 * dir, workspace, credentials, transport, runner path, preemption
 * sources, Slurm capacity thread) is logged as needing a restart and keeps
 * its running value. */
#include "agent/agent.h"
#include "agent/metrics.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static const char *const restart_keys[] = {"workspace",
                                           "token",
                                           "token_file",
                                           "ca_file",
                                           "proxy",
                                           "no_proxy",
                                           "ssh_known_hosts",
                                           "ssh_key",
                                           "ssh_key_passphrase_file",
                                           "ssh_fingerprint",
                                           "ssh_remote_port",
                                           "ssh_keepalive",
                                           "connect_timeout",
                                           "name",
                                           "labels",
                                           "state_dir",
                                           "runner_path",
                                           "preempt_events_url",
                                           "preempt_file",
                                           "preempt_poll",
                                           "preempt_window",
                                           "slurm_capacity",
                                           NULL};

static bool reload_needs_restart(const char *key)
{
	for (int i = 0; restart_keys[i] != NULL; i++)
		if (strcmp(restart_keys[i], key) == 0)
			return true;
	return false;
}

static bool reload_same(const struct conf_key *k, const void *a, const void *b)
{
	const char *pa = (const char *)a + k->offset;
	const char *pb = (const char *)b + k->offset;

	switch (k->type) {
	case CONF_STR: {
		const char *sa = *(char *const *)(const void *)pa;
		const char *sb = *(char *const *)(const void *)pb;
		return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
	}
	case CONF_BOOL:
		return *(const bool *)(const void *)pa ==
		       *(const bool *)(const void *)pb;
	case CONF_DOUBLE:
		return *(const double *)(const void *)pa ==
		       *(const double *)(const void *)pb;
	default:
		return *(const int64_t *)(const void *)pa ==
		       *(const int64_t *)(const void *)pb;
	}
}

/* Move the value of k from src into dst (strings are swapped, so freeing
 * src frees the old one). */
static void reload_take(const struct conf_key *k, void *dst, void *src)
{
	char *pd = (char *)dst + k->offset, *ps = (char *)src + k->offset;

	switch (k->type) {
	case CONF_STR: {
		char *t = *(char **)(void *)pd;
		*(char **)(void *)pd = *(char **)(void *)ps;
		*(char **)(void *)ps = t;
		break;
	}
	case CONF_BOOL:
		memcpy(pd, ps, sizeof(bool));
		break;
	case CONF_DOUBLE:
		memcpy(pd, ps, sizeof(double));
		break;
	default:
		memcpy(pd, ps, sizeof(int64_t));
	}
}

static int reload_read(struct agent *a, struct agent_conf *n, struct err *e)
{
	int r = agent_conf_load(n, a->conf_path, e);

	for (int i = 0; r == 0 && i < a->conf_nsets; i++)
		r = agent_conf_set(n, a->conf_sets[i], e);
	if (r == 0)
		r = agent_conf_check(n, e);
	return r;
}

/* What follows from changed live keys. */
static void reload_apply(struct agent *a, bool capacity, bool metrics)
{
	struct err e = {0};
	enum log_level lvl;

	if (log_parse_level(a->conf.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (capacity && capacity_detect(&a->conf, &a->cap, &e) < 0)
		log_warn("reload: capacity: %s", e.msg);
	if (metrics) {
		metrics_close();
		if (metrics_agent_listen(a, &e) < 0)
			log_warn("reload: %s", e.msg);
	}
	agent_kick(a);
	if (a->tp != NULL)
		lease_poll_soon(a, 0);
}

void reload_config(struct agent *a)
{
	struct agent_conf n;
	struct err e = {0};
	bool capacity = false, metrics = false;
	int changed = 0;

	if (reload_read(a, &n, &e) < 0) {
		log_warn("reload: %s; keeping the running settings", e.msg);
		agent_conf_free(&n);
		return;
	}
	for (const struct conf_key *k = agent_conf_table; k->name; k++) {
		if (reload_same(k, &a->conf, &n))
			continue;
		changed++;
		if (reload_needs_restart(k->name)) {
			log_warn("reload: %s changed; it takes effect after a "
			         "restart%s",
			         k->name,
			         strcmp(k->name, "labels") == 0 ||
			                 strcmp(k->name, "name") == 0
			             ? " with --re-register"
			             : "");
			continue;
		}
		capacity |= strcmp(k->name, "cpus") == 0 ||
		            strcmp(k->name, "memory") == 0 ||
		            strcmp(k->name, "gpus") == 0;
		metrics |= strcmp(k->name, "metrics_listen") == 0;
		reload_take(k, &a->conf, &n);
		log_info("reload: %s changed (applied)", k->name);
	}
	agent_conf_free(&n);
	if (changed == 0)
		log_info("reload: agent.conf unchanged");
	reload_apply(a, capacity, metrics);
}
