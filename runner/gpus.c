/* gpus.c: the GPU indices the agent assigned to the job (runner setting
 * `gpus`), read once for every user: the sandbox's device cgroup, docker's
 * DeviceRequests, CUDA_VISIBLE_DEVICES.  Its own file so that a launcher
 * linked alone (unit tests) does not pull in the supervisor. */
#include "runner/runner.h"

size_t runner_gpus(const struct runner *r, int *out, size_t max)
{
	json_t *gpus = json_object_get(r->settings, "gpus"), *g;
	size_t i, n = 0;

	json_array_foreach(gpus, i, g)
	{
		if (json_is_integer(g) && n < max)
			out[n++] = (int)json_integer_value(g);
	}
	return n;
}
