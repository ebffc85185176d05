/* cgroup-v1.c: limits, usage and freezing on cgroup v1 (one hierarchy
 * per controller: memory, cpu, cpuacct, pids, devices, freezer). */
#include "runner/sandbox/cgroup.h"
#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const v1_controllers[] = {
    "memory", "cpu", "cpuacct", "pids", "devices", "freezer", NULL};

/* Character devices every job may use: null, zero, full, random,
 * urandom, tty, console, ptmx and the pty slaves. */
static const char *const v1_devices[] = {
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",   "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", NULL};

static int v1_memory(struct job_cgroup *cg, int64_t bytes, struct err *e)
{
	char v[32];
	int rc;

	snprintf(v, sizeof(v), "%" PRId64, bytes > 0 ? bytes : -1);
	/* memsw >= limit at all times: raise memsw first when unlimiting. */
	if (bytes <= 0)
		cgroup_job_write(cg, "memory", "memory.memsw.limit_in_bytes", v,
		                 NULL);
	if ((rc = cgroup_job_write(cg, "memory", "memory.limit_in_bytes", v,
	                           e)) < 0)
		return rc;
	/* No swapping around the limit (ignored where swap accounting is
	 * off: the file is missing). */
	cgroup_job_write(cg, "memory", "memory.memsw.limit_in_bytes", v, NULL);
	cgroup_job_write(cg, "memory", "memory.max_usage_in_bytes", "0", NULL);
	return 0;
}

static int v1_devices_limit(struct job_cgroup *cg,
                            const struct cgroup_limits *l, struct err *e)
{
	char v[64];
	int rc, uvm;

	if ((rc = cgroup_job_write(cg, "devices", "devices.deny", "a", e)) < 0)
		return rc;
	for (size_t i = 0; v1_devices[i] != NULL; i++)
		if ((rc = cgroup_job_write(cg, "devices", "devices.allow",
		                           v1_devices[i], e)) < 0)
			return rc;
	if (l->ngpus == 0)
		return 0;
	/* NVIDIA: /dev/nvidia<minor> (major 195), nvidiactl (195:255),
	 * nvidia-modeset (195:254), nvidia-uvm (dynamic major). */
	for (size_t i = 0; i < l->ngpus; i++) {
		snprintf(v, sizeof(v), "c 195:%d rwm", l->gpus[i]);
		cgroup_job_write(cg, "devices", "devices.allow", v, NULL);
	}
	cgroup_job_write(cg, "devices", "devices.allow", "c 195:255 rwm", NULL);
	cgroup_job_write(cg, "devices", "devices.allow", "c 195:254 rwm", NULL);
	if ((uvm = cgroup_char_major("nvidia-uvm")) > 0) {
		snprintf(v, sizeof(v), "c %d:* rwm", uvm);
		cgroup_job_write(cg, "devices", "devices.allow", v, NULL);
	}
	return 0;
}

/* A fresh group starts at the kernel's defaults: no memory or CPU limit,
 * pids.max "max", zero usage (the devices list is the parent's, so it is
 * always written).  Only a limit the job asks for is written then, which
 * also spares the CFS bandwidth update (tg_set_bandwidth, ≈ 1 ms of CPU
 * here) of the two cpu.cfs_* writes; a group reused after a crash gets
 * every value. */
static int v1_limit(struct job_cgroup *cg, const struct cgroup_limits *l,
                    struct err *e)
{
	char v[32];
	int rc;

	if ((l->memory > 0 || !cg->fresh) &&
	    (rc = v1_memory(cg, l->memory, e)) < 0)
		return rc;
	if ((l->cpus > 0 || !cg->fresh) &&
	    (rc = cgroup_job_write(cg, "cpu", "cpu.cfs_period_us", "100000",
	                           e)) < 0)
		return rc;
	snprintf(v, sizeof(v), "%" PRId64,
	         l->cpus > 0 ? (int64_t)(l->cpus * 100000) : (int64_t)-1);
	if ((l->cpus > 0 || !cg->fresh) &&
	    (rc = cgroup_job_write(cg, "cpu", "cpu.cfs_quota_us", v, e)) < 0)
		return rc;
	if (l->pids > 0)
		snprintf(v, sizeof(v), "%" PRId64, l->pids);
	else
		snprintf(v, sizeof(v), "max");
	if ((l->pids > 0 || !cg->fresh) &&
	    (rc = cgroup_job_write(cg, "pids", "pids.max", v, e)) < 0)
		return rc;
	if (!cg->fresh)
		cgroup_job_write(cg, "cpuacct", "cpuacct.usage", "0", NULL);
	return v1_devices_limit(cg, l, e);
}

static int v1_freeze(struct job_cgroup *cg, bool frozen, struct err *e)
{
	char state[32];
	int rc;

	if ((rc = cgroup_job_write(cg, "freezer", "freezer.state",
	                           frozen ? "FROZEN" : "THAWED", e)) < 0)
		return rc;
	/* FREEZING -> FROZEN takes a moment; wait up to ~100 ms. */
	for (int i = 0; frozen && i < 100; i++) {
		if (cgroup_job_read(cg, "freezer", "freezer.state", state,
		                    sizeof(state)) < 0 ||
		    strncmp(state, "FROZEN", 6) == 0)
			break;
		nanosleep(&(struct timespec){0, 1000000L}, NULL);
	}
	return 0;
}

static void v1_usage(struct job_cgroup *cg, struct cgroup_usage *u)
{
	int64_t ns = cgroup_job_read_i64(cg, "cpuacct", "cpuacct.usage");

	u->peak_memory_bytes =
	    cgroup_job_read_i64(cg, "memory", "memory.max_usage_in_bytes");
	if (ns >= 0)
		u->cpu_seconds = (double)ns / 1e9;
	u->oom = cgroup_job_read_key(cg, "memory", "memory.oom_control",
	                             "oom_kill") > 0;
}

const struct cgroup_ops cgroup_v1_ops = {
    .version = 1,
    .controllers = v1_controllers,
    .limit = v1_limit,
    .freeze = v1_freeze,
    .usage = v1_usage,
    .procs_controller = "pids",
};
