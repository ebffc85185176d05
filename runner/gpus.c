/* gpus.c: the GPU indices the agent assigned to the job (runner setting
 * `gpus`), read once for every user: the sandbox's device cgroup, docker's
 * DeviceRequests, CUDA_VISIBLE_DEVICES.  Its own file so that a launcher
 * linked alone (unit tests) does not pull in the supervisor. */
#include "runner/runner.h"

size_t runner_gpus(const struct runner *r, int *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < r->set.ngpus && n < max; i++)
		out[n++] = r->set.gpus[i];
	return n;
}
