/* gpu-nvml.h: the one NVML loader (dlopen of libnvidia-ml.so.1), used by
 * the GPU inventory (capacity_gpus) and by `tether-agent doctor`. */
#ifndef TETHER_AGENT_GPU_NVML_H
#define TETHER_AGENT_GPU_NVML_H

#include <stddef.h>

struct nvml;

/* Load the library and start NVML.  TERR_NOTFOUND when the library is
 * absent; TERR_FAIL when it is there but a symbol is missing or NVML does
 * not start. */
int gpu_nvml_open(struct nvml **out);
/* Shut NVML down and unload.  Accepts NULL. */
void gpu_nvml_close(struct nvml *n);
/* How many GPUs NVML sees (0 when it cannot say). */
unsigned int gpu_nvml_count(struct nvml *n);
/* The driver's version into out ("?" when NVML cannot say). */
void gpu_nvml_driver(struct nvml *n, char *out, size_t len);

#endif
