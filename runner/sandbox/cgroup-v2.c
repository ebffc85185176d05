/* cgroup-v2.c: limits, usage and freezing on the unified hierarchy.
 *
 * Device limits on v2 need an eBPF program (BPF_CGROUP_DEVICE); that is
 * not implemented: on v2 the sandbox relies on its read-only /dev bind and
 * the job user's permissions (docs/sandbox.md). */
#include "runner/sandbox/cgroup.h"
#include "common/err.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const v2_controllers[] = {"memory", "cpu", "pids", NULL};

/* Enable the controllers for children of every ancestor of the group. */
static void v2_enable(struct job_cgroup *cg)
{
	char *path = xstrdup(cg->path), *slash;
	char *dir;
	FILE *f;

	for (slash = path; slash != NULL; slash = strchr(slash + 1, '/')) {
		char saved = *slash;
		*slash = '\0';
		dir = xasprintf("%s/%s/cgroup.subtree_control", cg->v2_root,
		                slash == path ? "" : path);
		*slash = saved;
		if ((f = fopen(dir, "we")) != NULL) {
			fputs("+memory +cpu +pids", f);
			fclose(f);
		}
		free(dir);
	}
	free(path);
}

static int v2_limit(struct job_cgroup *cg, const struct cgroup_limits *l,
                    struct err *e)
{
	char v[64];
	int rc;

	v2_enable(cg);
	if (l->memory > 0)
		snprintf(v, sizeof(v), "%" PRId64, l->memory);
	else
		snprintf(v, sizeof(v), "max");
	if ((rc = cgroup_job_write(cg, NULL, "memory.max", v, e)) < 0)
		return rc;
	if (l->memory > 0)
		cgroup_job_write(cg, NULL, "memory.swap.max", "0", NULL);
	if (l->cpus > 0)
		snprintf(v, sizeof(v), "%" PRId64 " 100000",
		         (int64_t)(l->cpus * 100000));
	else
		snprintf(v, sizeof(v), "max 100000");
	if ((rc = cgroup_job_write(cg, NULL, "cpu.max", v, e)) < 0)
		return rc;
	if (l->pids > 0)
		snprintf(v, sizeof(v), "%" PRId64, l->pids);
	else
		snprintf(v, sizeof(v), "max");
	return cgroup_job_write(cg, NULL, "pids.max", v, e);
}

static int v2_freeze(struct job_cgroup *cg, bool frozen, struct err *e)
{
	return cgroup_job_write(cg, NULL, "cgroup.freeze", frozen ? "1" : "0",
	                        e);
}

static void v2_usage(struct job_cgroup *cg, struct cgroup_usage *u)
{
	int64_t us = cgroup_job_read_key(cg, NULL, "cpu.stat", "usage_usec");

	u->peak_memory_bytes = cgroup_job_read_i64(cg, NULL, "memory.peak");
	if (us >= 0)
		u->cpu_seconds = (double)us / 1e6;
	u->oom = cgroup_job_read_key(cg, NULL, "memory.events", "oom_kill") > 0;
}

const struct cgroup_ops cgroup_v2_ops = {
    .version = 2,
    .controllers = v2_controllers,
    .limit = v2_limit,
    .freeze = v2_freeze,
    .usage = v2_usage,
    .procs_controller = "memory",
};
