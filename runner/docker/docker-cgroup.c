/* docker-cgroup.c: what the runner reads and signals directly in a job
 * container's cgroup: every process of it (docker's kill reaches only its
 * init), and its peak memory and CPU time. */
#include "runner/docker/launcher-docker.h"

#include "common/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* True when the comma-separated controller list holds ctrl. */
static bool has_controller(const char *list, size_t n, const char *ctrl)
{
	size_t k = strlen(ctrl);

	for (const char *p = list; p < list + n;) {
		size_t w = strcspn(p, ",:");
		if (w == k && strncmp(p, ctrl, k) == 0)
			return true;
		p += w + 1;
	}
	return false;
}

/* The container's cgroup directory for a v1 controller, else its unified
 * (v2) one, from its init's /proc entry; NULL unless the path names the
 * container (an exiting task shows the root cgroup, and signalling the
 * root cgroup would reach every process of the host). */
char *docker_cgroup_dir(pid_t init, const char *id, const char *ctrl)
{
	char *path = xasprintf("/proc/%d/cgroup", (int)init), line[1024];
	char *v1 = NULL, *v2 = NULL;
	FILE *f = fopen(path, "r");

	free(path);
	if (f == NULL || strlen(id) < 12) {
		if (f)
			fclose(f);
		return NULL;
	}
	while (v1 == NULL && fgets(line, sizeof(line), f)) {
		char *list = strchr(line, ':'), *rel;

		line[strcspn(line, "\n")] = '\0';
		if (list == NULL || (rel = strchr(++list, ':')) == NULL)
			continue;
		if (strstr(++rel, id) == NULL)
			continue;
		if (list == rel - 1 && v2 == NULL) /* "0::/path" */
			v2 = xasprintf("/sys/fs/cgroup%s%s",
			               access("/sys/fs/cgroup/unified", F_OK) ==
			                       0
			                   ? "/unified"
			                   : "",
			               rel);
		else if (has_controller(list, (size_t)(rel - 1 - list), ctrl))
			v1 = xasprintf("/sys/fs/cgroup/%.*s%s",
			               (int)(rel - 1 - list), list, rel);
	}
	fclose(f);
	if (v1 != NULL) {
		free(v2);
		return v1;
	}
	return v2;
}

/* The cgroup.procs file of the container's pids cgroup (or v2). */
static char *container_procs(pid_t init, const char *id)
{
	char *dir = docker_cgroup_dir(init, id, "pids"), *procs;

	if (dir == NULL)
		return NULL;
	procs = xasprintf("%s/cgroup.procs", dir);
	free(dir);
	return procs;
}

/* First number in dir/file after an optional "key " prefix; -1 if none. */
static int64_t read_stat(const char *dir, const char *file, const char *key)
{
	char *path = xasprintf("%s/%s", dir, file), line[256];
	FILE *f = fopen(path, "r");
	int64_t v = -1;
	size_t k = key ? strlen(key) : 0;

	free(path);
	while (f != NULL && v < 0 && fgets(line, sizeof(line), f))
		if (k == 0 || (strncmp(line, key, k) == 0 && line[k] == ' '))
			v = strtoll(line + k, NULL, 10);
	if (f != NULL)
		fclose(f);
	return v;
}

/* Sample peak memory and CPU time from the container's cgroup (at most
 * twice a second); called from the follower's transfer. */
void dlaunch_sample(void *arg)
{
	struct dlaunch *dl = arg;
	int64_t now = now_mono_ms(), v;

	if ((dl->last_sample_ms > 0 && now - dl->last_sample_ms < 500) ||
	    dl->mem_dir == NULL)
		return;
	dl->last_sample_ms = now;
	if ((v = read_stat(dl->mem_dir, "memory.max_usage_in_bytes", NULL)) <
	        0 &&
	    (v = read_stat(dl->mem_dir, "memory.peak", NULL)) < 0)
		v = read_stat(dl->mem_dir, "memory.current", NULL);
	if (v > dl->peak_bytes)
		dl->peak_bytes = v;
	if ((v = read_stat(dl->cpu_dir, "cpuacct.usage", NULL)) >= 0)
		dl->cpu_seconds = (double)v / 1e9;
	else if ((v = read_stat(dl->cpu_dir, "cpu.stat", "usage_usec")) >= 0)
		dl->cpu_seconds = (double)v / 1e6;
}

/* Signal every process of the container but its init. */
int docker_cgroup_signal(pid_t init, const char *id, int sig)
{
	char *procs = container_procs(init, id);
	FILE *f = procs ? fopen(procs, "r") : NULL;
	int pid, n = 0;

	if (f != NULL) {
		while (fscanf(f, "%d", &pid) == 1)
			if (pid > 1 && pid != init && kill(pid, sig) == 0)
				n++;
		fclose(f);
	}
	free(procs);
	return n;
}
