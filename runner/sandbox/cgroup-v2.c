/* cgroup-v2.c: limits, usage and freezing on the unified hierarchy.
 *
 * Device limits on v2 are a BPF_CGROUP_DEVICE program (cgroup-bpf.c). */
#include "runner/sandbox/cgroup.h"
#include "common/err.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const v2_controllers[] = {"memory", "cpu", "pids", NULL};

/* Enable the controllers for children of every ancestor of the group
 * (libcgroup did so when it made the group; this repairs a parent whose
 * controllers were switched off since).  One write per controller: one
 * the kernel lacks must not keep the others off. */
static void v2_enable(struct job_cgroup *cg)
{
	char *path = xstrdup(cg->path), *slash;
	char *file;

	for (slash = path; slash != NULL; slash = strchr(slash + 1, '/')) {
		char saved = *slash;
		*slash = '\0';
		file = xasprintf("%s/%s/cgroup.subtree_control", cg->v2_root,
		                 slash == path ? "" : path);
		*slash = saved;
		for (size_t i = 0; v2_controllers[i] != NULL; i++) {
			FILE *f = fopen(file, "we");
			if (f != NULL) {
				fprintf(f, "+%s", v2_controllers[i]);
				fclose(f);
			}
		}
		free(file);
	}
	free(path);
}

/* A limit the group cannot enforce is an error, never a silent no-op:
 * the controller must be in the group's cgroup.controllers. */
static int v2_need(struct job_cgroup *cg, const char *controller, struct err *e)
{
	char buf[512], *p;
	size_t n = strlen(controller);

	if (cgroup_job_read(cg, NULL, "cgroup.controllers", buf, sizeof(buf)) <
	    0)
		return err_sys(e, TERR_IO, "read cgroup.controllers");
	for (p = strstr(buf, controller); p != NULL;
	     p = strstr(p + 1, controller))
		if ((p == buf || p[-1] == ' ') &&
		    (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return 0;
	return err_set(e, TERR_UNSUPP,
	               "cgroup v2 controller '%s' is not enabled for the "
	               "group (cgroup.subtree_control of its parent)",
	               controller);
}

static int v2_limit(struct job_cgroup *cg, const struct cgroup_limits *l,
                    struct err *e)
{
	char v[64];
	int rc;

	v2_enable(cg);
	if ((rc = v2_need(cg, "memory", e)) < 0 ||
	    (rc = v2_need(cg, "pids", e)) < 0 ||
	    (l->cpus > 0 && (rc = v2_need(cg, "cpu", e)) < 0))
		return rc;
	if (l->memory > 0)
		snprintf(v, sizeof(v), "%" PRId64, l->memory);
	else
		snprintf(v, sizeof(v), "max");
	if ((rc = cgroup_job_write(cg, NULL, "memory.max", v, e)) < 0)
		return rc;
	/* memory+swap: no swapping around the limit (memory.swap.max is
	 * missing where swap accounting is off). */
	if (l->memory > 0)
		cgroup_job_write(cg, NULL, "memory.swap.max", "0", NULL);
	if (l->cpus > 0 || v2_need(cg, "cpu", NULL) == 0) {
		if (l->cpus > 0)
			snprintf(v, sizeof(v), "%" PRId64 " 100000",
			         (int64_t)(l->cpus * 100000));
		else
			snprintf(v, sizeof(v), "max 100000");
		if ((rc = cgroup_job_write(cg, NULL, "cpu.max", v, e)) < 0)
			return rc;
	}
	if (l->pids > 0)
		snprintf(v, sizeof(v), "%" PRId64, l->pids);
	else
		snprintf(v, sizeof(v), "max");
	if ((rc = cgroup_job_write(cg, NULL, "pids.max", v, e)) < 0)
		return rc;
	return cgroup_v2_devices(cg, l, e);
}

static int v2_freeze(struct job_cgroup *cg, bool frozen, struct err *e)
{
	return cgroup_job_write(cg, NULL, "cgroup.freeze", frozen ? "1" : "0",
	                        e);
}

static int v2_kill(struct job_cgroup *cg, struct err *e)
{
	return cgroup_job_write(cg, NULL, "cgroup.kill", "1", e);
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
    .kill = v2_kill,
    .usage = v2_usage,
    .procs_controller = "memory",
};
