/* gpu-nvml.c: GPU inventory through NVML, loaded with dlopen so that the
 * agent runs (with no GPUs) where the NVIDIA driver is not installed. */
#include "agent/capacity.h"

#include "common/log.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef void *nvml_device;
struct nvml_memory {
	unsigned long long total, free, used;
};

struct nvml_api {
	int (*init)(void);
	int (*shutdown)(void);
	int (*count)(unsigned int *);
	int (*handle)(unsigned int, nvml_device *);
	int (*name)(nvml_device, char *, unsigned int);
	int (*uuid)(nvml_device, char *, unsigned int);
	int (*memory)(nvml_device, struct nvml_memory *);
};

static int nvml_load(void *lib, struct nvml_api *api)
{
	*(void **)&api->init = dlsym(lib, "nvmlInit_v2");
	*(void **)&api->shutdown = dlsym(lib, "nvmlShutdown");
	*(void **)&api->count = dlsym(lib, "nvmlDeviceGetCount_v2");
	*(void **)&api->handle = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
	*(void **)&api->name = dlsym(lib, "nvmlDeviceGetName");
	*(void **)&api->uuid = dlsym(lib, "nvmlDeviceGetUUID");
	*(void **)&api->memory = dlsym(lib, "nvmlDeviceGetMemoryInfo");
	return api->init && api->shutdown && api->count && api->handle &&
	               api->name && api->uuid && api->memory
	           ? 0
	           : -1;
}

int capacity_gpus(struct gpu_info *out, int max)
{
	void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	struct nvml_api api;
	unsigned int n = 0;
	int got = 0;

	if (lib == NULL)
		return 0;
	if (nvml_load(lib, &api) < 0 || api.init() != 0) {
		log_warn("libnvidia-ml.so.1 found but NVML did not start");
		dlclose(lib);
		return 0;
	}
	if (api.count(&n) != 0)
		n = 0;
	for (unsigned int i = 0; i < n && got < max; i++) {
		nvml_device d;
		struct nvml_memory m = {0};
		struct gpu_info *g = &out[got];

		if (api.handle(i, &d) != 0)
			continue;
		memset(g, 0, sizeof(*g));
		g->index = (int)i;
		api.name(d, g->model, sizeof(g->model));
		api.uuid(d, g->uuid, sizeof(g->uuid));
		if (api.memory(d, &m) == 0)
			g->memory = (int64_t)m.total;
		got++;
	}
	api.shutdown();
	dlclose(lib);
	return got;
}
