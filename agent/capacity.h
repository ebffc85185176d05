/* capacity.h: what this node offers: CPUs, memory, disk, GPUs and facts. */
#ifndef TETHER_AGENT_CAPACITY_H
#define TETHER_AGENT_CAPACITY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct agent_conf;
struct err;

#define CAP_MAX_GPUS 16

struct gpu_info {
	int index;
	char model[96];
	int64_t memory;
	char uuid[96];
};

struct capacity {
	double cpus;
	int64_t memory, disk;
	int ngpus;
	struct gpu_info gpus[CAP_MAX_GPUS];
	char os[128], kernel[96], cgroup[8], docker[32];
	bool slurm;
	char machine_id[64], hostname[128];
};

/* Detect, then apply the config overrides (cpus, memory, gpus). */
int capacity_detect(const struct agent_conf *c, struct capacity *cap,
                    struct err *e);
/* NVML through dlopen("libnvidia-ml.so.1"); 0 GPUs when absent. */
int capacity_gpus(struct gpu_info *out, int max);
/* {"cpus", "memory", "disk", "gpus": [...]} */
json_t *capacity_json(const struct capacity *cap);
/* {"cgroup", "docker", "slurm"} */
json_t *capacity_facts(const struct capacity *cap);

#endif
