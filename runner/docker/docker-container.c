/* docker-container.c: what a job's container looks like: the create body
 * (argv, env, mounts, user, HostConfig limits, labels) and its name. */
#include "runner/docker/docker.h"
#include "runner/allowlist.h"

#include "common/err.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/runner.h"

#include <stdlib.h>
#include <string.h>

char *docker_container_name(const struct runner *r)
{
	char hex[SHA256_HEX_LEN + 1], *job = xstrdup(r->job_id), *name;

	for (char *p = job; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
		            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
		            *p))
			*p = '_';
	sha256_hex(r->dir, strlen(r->dir), hex);
	hex[12] = '\0';
	name = xasprintf("tether-%s-%lld-%s", job, (long long)r->attempt, hex);
	free(job);
	return name;
}

/* True when the job spec sets this variable itself. */
static bool spec_sets(const struct runner *r, const char *kv, size_t n)
{
	for (size_t i = 0; i < r->spec->nenv; i++)
		if (strlen(r->spec->env_vars[i].key) == n &&
		    strncmp(r->spec->env_vars[i].key, kv, n) == 0)
			return true;
	return false;
}

/* The job's environment with the container's own paths for TETHER_*.
 * PATH stays the image's unless the job spec sets it. */
static json_t *container_env(const struct runner *r)
{
	static const char *const ours[] = {"TETHER_WORK", "TETHER_OUTPUTS",
	                                   "TETHER_CHECKPOINTS", NULL};
	json_t *env = json_array();
	size_t n;

	for (size_t i = 0; r->envp && r->envp[i]; i++) {
		const char *kv = r->envp[i];
		bool skip = false;

		n = strcspn(kv, "=");
		for (size_t k = 0; ours[k]; k++)
			skip |=
			    strlen(ours[k]) == n && !strncmp(kv, ours[k], n);
		if (n == 4 && !strncmp(kv, "PATH", 4) && !spec_sets(r, kv, n))
			skip = true;
		if (!skip)
			json_array_append_new(env, json_string(kv));
	}
	json_array_append_new(env, json_string("TETHER_WORK=" DOCKER_WORK));
	json_array_append_new(env,
	                      json_string("TETHER_OUTPUTS=" DOCKER_OUTPUTS));
	json_array_append_new(
	    env, json_string("TETHER_CHECKPOINTS=" DOCKER_CHECKPOINTS));
	return env;
}

static json_t *bind_mount(const char *src, const char *dst, bool ro)
{
	return json_pack("{s:s, s:s, s:s, s:b}", "Type", "bind", "Source", src,
	                 "Target", dst, "ReadOnly", ro);
}

static int container_mounts(const struct runner *r, json_t **out, struct err *e)
{
	const struct attempt_mount *a;
	json_t *m = json_array();

	json_array_append_new(m, bind_mount(r->work_dir, DOCKER_WORK, false));
	json_array_append_new(
	    m, bind_mount(r->outputs_dir, DOCKER_OUTPUTS, false));
	json_array_append_new(
	    m, bind_mount(r->checkpoints_dir, DOCKER_CHECKPOINTS, false));
	for (size_t i = 0; i < r->spec->nmounts; i++) {
		const struct jobspec_mount *jm = &r->spec->mounts[i];
		char real[PATH_MAX];

		if ((a = allowlist_entry(r, jm->source, real)) == NULL) {
			json_decref(m);
			return err_set(e, TERR_PERM,
			               "mounts[%zu]: %s is not under an "
			               "allowed_mounts entry of this agent",
			               i, jm->source);
		}
		json_array_append_new(
		    m, bind_mount(real, jm->target,
		                  allowlist_readonly(a, jm->readonly)));
	}
	*out = m;
	return 0;
}

/* GPU device requests for the GPUs the agent assigned (settings.gpus). */
static json_t *gpu_requests(const struct runner *r)
{
	int gpus[64];
	size_t n = runner_gpus(r, gpus, 64);
	json_t *ids;

	if (n == 0)
		return json_array();
	ids = json_array();
	for (size_t i = 0; i < n; i++) {
		char *s = xasprintf("%d", gpus[i]);

		json_array_append_new(ids, json_string(s));
		free(s);
	}
	return json_pack("[{s:s, s:o, s:[[s]]}]", "Driver", "nvidia",
	                 "DeviceIDs", ids, "Capabilities", "gpu");
}

static json_t *host_config(const struct runner *r, json_t *mounts)
{
	const struct jobspec *s = r->spec;
	int64_t pids =
	    s->resources.pids ? s->resources.pids : r->set.default_pids;
	bool ro = r->set.docker_readonly_rootfs;
	json_t *hc = json_pack(
	    "{s:o, s:s, s:[s], s:[s], s:b, s:o, s:{s:s, s:{s:s, s:s, s:s}}}",
	    "Mounts", mounts, "NetworkMode",
	    s->network == NET_NONE ? "none" : "bridge", "CapDrop", "ALL",
	    "SecurityOpt", "no-new-privileges", "ReadonlyRootfs", ro,
	    "DeviceRequests", gpu_requests(r), "LogConfig", "Type", "local",
	    "Config", "max-size", "1t", "max-file", "1", "compress", "false");
	char *max;

	/* the engine keeps what the runner may still need to match on
	 * re-attach: the capped log plus some slack */
	if (r->set.max_log_bytes > 0) {
		max = xasprintf("%lld",
		                (long long)r->set.max_log_bytes + (64 << 20));
		json_object_set_new(
		    json_object_get(json_object_get(hc, "LogConfig"), "Config"),
		    "max-size", json_string(max));
		free(max);
	}

	if (s->resources.memory > 0) {
		json_object_set_new(hc, "Memory",
		                    json_integer(s->resources.memory));
		json_object_set_new(hc, "MemorySwap",
		                    json_integer(s->resources.memory));
	}
	if (s->resources.cpus > 0)
		json_object_set_new(
		    hc, "NanoCpus",
		    json_integer((json_int_t)(s->resources.cpus * 1e9)));
	if (pids > 0)
		json_object_set_new(hc, "PidsLimit", json_integer(pids));
	/* docker-init as pid 1: signals reach the job, zombies are reaped */
	json_object_set_new(hc, "Init", json_true());
	if (ro)
		json_object_set_new(
		    hc, "Tmpfs", json_pack("{s:s}", "/tmp", "rw,nosuid,nodev"));
	return hc;
}

int docker_container_body(const struct runner *r, const char *image,
                          json_t **out, struct err *e)
{
	json_t *argv = json_array(), *mounts = NULL, *labels;
	const char *agent = r->set.agent_id;
	char *wd, *user, *att;
	int rc;

	if ((rc = container_mounts(r, &mounts, e)) < 0) {
		json_decref(argv);
		return rc;
	}
	for (size_t i = 0; r->argv && r->argv[i]; i++)
		json_array_append_new(argv, json_string(r->argv[i]));
	wd = r->spec->workdir ? xasprintf(DOCKER_WORK "/%s", r->spec->workdir)
	                      : xstrdup(DOCKER_WORK);
	user = xasprintf("%u:%u", (unsigned)r->uid, (unsigned)r->gid);
	att = xasprintf("%lld", (long long)r->attempt);
	labels = json_pack("{s:s, s:s, s:s, s:s, s:s}", "tether.job", r->job_id,
	                   "tether.attempt", att, "tether.agent",
	                   agent ? agent : "", "tether.state_dir",
	                   r->set.state_dir ? r->set.state_dir : "",
	                   "tether.dir", r->dir);
	*out = json_pack("{s:s, s:o, s:o, s:s, s:s, s:o, s:o, s:b, s:b}",
	                 "Image", image, "Cmd", argv, "Env", container_env(r),
	                 "WorkingDir", wd, "User", user, "Labels", labels,
	                 "HostConfig", host_config(r, mounts), "AttachStdout",
	                 false, "AttachStderr", false);
	free(wd);
	free(user);
	free(att);
	return 0;
}
