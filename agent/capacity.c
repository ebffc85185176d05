/* capacity.c: detect CPUs, memory, disk, OS, kernel, cgroup version,
 * docker and Slurm.  GPUs are in gpu-nvml.c. */
#include "agent/capacity.h"

#include "agent/config.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/util.h"
#include "docker/docker.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

static void cap_os(struct capacity *cap)
{
	char *text = NULL, *p;
	struct utsname u;

	snprintf(cap->os, sizeof(cap->os), "Linux");
	if (file_read_all("/etc/os-release", 65536, &text, NULL, NULL) == 0 &&
	    (p = strstr(text, "PRETTY_NAME=")) != NULL) {
		p += 12;
		if (*p == '"')
			p++;
		size_t n = strcspn(p, "\"\n");
		snprintf(cap->os, sizeof(cap->os), "%.*s", (int)n, p);
	}
	free(text);
	if (uname(&u) == 0)
		snprintf(cap->kernel, sizeof(cap->kernel), "%s", u.release);
}

static void cap_machine_id(const struct agent_conf *c, struct capacity *cap)
{
	char *text = NULL;

	if (c->machine_id != NULL && c->machine_id[0] != '\0')
		snprintf(cap->machine_id, sizeof(cap->machine_id), "%s",
		         c->machine_id);
	else if (file_read_all("/etc/machine-id", 256, &text, NULL, NULL) ==
	         0) {
		text[strcspn(text, " \n")] = '\0';
		snprintf(cap->machine_id, sizeof(cap->machine_id), "%s", text);
	}
	free(text);
	if (gethostname(cap->hostname, sizeof(cap->hostname)) < 0)
		snprintf(cap->hostname, sizeof(cap->hostname), "node");
}

/* Docker Engine API version over its socket ("" when not reachable). */
static void cap_docker(const struct agent_conf *c, struct capacity *cap)
{
	struct docker_version v;

	if (c->docker_socket == NULL || access(c->docker_socket, W_OK) < 0)
		return;
	if (docker_version_probe(c->docker_socket, 2000, &v, NULL) == 0)
		snprintf(cap->docker, sizeof(cap->docker), "%s", v.api);
}

static bool cap_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	bool found = false;

	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	copy = xstrdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", dir, prog);
		found = access(p, X_OK) == 0;
		free(p);
	}
	free(copy);
	return found;
}

int capacity_detect(const struct agent_conf *c, struct capacity *cap,
                    struct err *e)
{
	struct sysinfo si;
	struct statvfs sv;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	memset(cap, 0, sizeof(*cap));
	cap->cpus = n > 0 ? (double)n : 1;
	if (sysinfo(&si) == 0)
		cap->memory = (int64_t)si.totalram * si.mem_unit;
	if (statvfs(c->state_dir, &sv) == 0)
		cap->disk = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
	cap_os(cap);
	cap_machine_id(c, cap);
	snprintf(cap->cgroup, sizeof(cap->cgroup), "%s",
	         access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "v2"
	                                                                : "v1");
	cap_docker(c, cap);
	cap->slurm = cap_in_path("sinfo") && cap_in_path("sbatch");
	cap->ngpus = capacity_gpus(cap->gpus, CAP_MAX_GPUS);
	if (c->cpus > 0)
		cap->cpus = c->cpus;
	if (c->memory > 0)
		cap->memory = c->memory;
	if (c->gpus >= 0 && c->gpus < cap->ngpus)
		cap->ngpus = (int)c->gpus;
	else if (c->gpus > cap->ngpus)
		return err_set(e, TERR_INVAL,
		               "gpus = %lld but only %d GPU(s) detected",
		               (long long)c->gpus, cap->ngpus);
	return 0;
}

json_t *capacity_json(const struct capacity *cap)
{
	json_t *gpus = json_array();

	for (int i = 0; i < cap->ngpus; i++)
		json_array_append_new(gpus,
		                      json_pack("{s:i, s:s, s:I, s:s}", "index",
		                                cap->gpus[i].index, "model",
		                                cap->gpus[i].model, "memory",
		                                (json_int_t)cap->gpus[i].memory,
		                                "uuid", cap->gpus[i].uuid));
	return json_pack("{s:f, s:I, s:I, s:o}", "cpus", cap->cpus, "memory",
	                 (json_int_t)cap->memory, "disk", (json_int_t)cap->disk,
	                 "gpus", gpus);
}

json_t *capacity_facts(const struct capacity *cap)
{
	return json_pack("{s:s, s:s?, s:b}", "cgroup", cap->cgroup, "docker",
	                 cap->docker[0] ? cap->docker : NULL, "slurm",
	                 cap->slurm);
}
