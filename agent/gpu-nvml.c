/* gpu-nvml.c: GPU inventory through NVML, loaded with dlopen so that the
 * agent runs (with no GPUs) where the NVIDIA driver is not installed. */
#include "agent/capacity.h"
#include "agent/gpu-nvml.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *nvml_device;
struct nvml_memory {
	unsigned long long total, free, used;
};

struct nvml {
	void *lib;
	int (*init)(void);
	int (*shutdown)(void);
	int (*count)(unsigned int *);
	int (*driver)(char *, unsigned int);
	int (*handle)(unsigned int, nvml_device *);
	int (*name)(nvml_device, char *, unsigned int);
	int (*uuid)(nvml_device, char *, unsigned int);
	int (*memory)(nvml_device, struct nvml_memory *);
};

static int nvml_load(struct nvml *api)
{
	void *lib = api->lib;

	*(void **)&api->init = dlsym(lib, "nvmlInit_v2");
	*(void **)&api->shutdown = dlsym(lib, "nvmlShutdown");
	*(void **)&api->count = dlsym(lib, "nvmlDeviceGetCount_v2");
	*(void **)&api->driver = dlsym(lib, "nvmlSystemGetDriverVersion");
	*(void **)&api->handle = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
	*(void **)&api->name = dlsym(lib, "nvmlDeviceGetName");
	*(void **)&api->uuid = dlsym(lib, "nvmlDeviceGetUUID");
	*(void **)&api->memory = dlsym(lib, "nvmlDeviceGetMemoryInfo");
	return api->init && api->shutdown && api->count && api->driver &&
	               api->handle && api->name && api->uuid && api->memory
	           ? 0
	           : -1;
}

int gpu_nvml_open(struct nvml **out)
{
	struct nvml *n = xcalloc(1, sizeof(*n));

	*out = NULL;
	n->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (n->lib == NULL) {
		free(n);
		return TERR_NOTFOUND;
	}
	if (nvml_load(n) < 0 || n->init() != 0) {
		dlclose(n->lib);
		free(n);
		return TERR_FAIL;
	}
	*out = n;
	return 0;
}

void gpu_nvml_close(struct nvml *n)
{
	if (n == NULL)
		return;
	n->shutdown();
	dlclose(n->lib);
	free(n);
}

unsigned int gpu_nvml_count(struct nvml *n)
{
	unsigned int c = 0;

	return n->count(&c) == 0 ? c : 0;
}

void gpu_nvml_driver(struct nvml *n, char *out, size_t len)
{
	if (n->driver(out, (unsigned int)len) != 0)
		snprintf(out, len, "?");
}

int capacity_gpus(struct gpu_info *out, int max)
{
	struct nvml *api;
	unsigned int n;
	int got = 0, r;

	if ((r = gpu_nvml_open(&api)) == TERR_NOTFOUND)
		return 0;
	if (r < 0) {
		log_warn("libnvidia-ml.so.1 found but NVML did not start");
		return 0;
	}
	n = gpu_nvml_count(api);
	for (unsigned int i = 0; i < n && got < max; i++) {
		nvml_device d;
		struct nvml_memory m = {0};
		struct gpu_info *g = &out[got];

		if (api->handle(i, &d) != 0)
			continue;
		memset(g, 0, sizeof(*g));
		g->index = (int)i;
		api->name(d, g->model, sizeof(g->model));
		api->uuid(d, g->uuid, sizeof(g->uuid));
		if (api->memory(d, &m) == 0)
			g->memory = (int64_t)m.total;
		got++;
	}
	gpu_nvml_close(api);
	return got;
}
