/* launcher.c: the launcher for a kind (sandbox.c, launcher-docker.c,
 * launcher-slurm.c). */
#include "runner/launcher.h"
#include "common/jobspec.h"

#include <stddef.h>

const struct launcher_ops *launcher_for(enum launcher_kind k)
{
	switch (k) {
	case LAUNCHER_DEFAULT:
	case LAUNCHER_SANDBOX:
		return &launcher_sandbox;
	case LAUNCHER_DOCKER:
		return &launcher_docker;
	case LAUNCHER_SLURM:
		return &launcher_slurm;
	case LAUNCHER_SPARK:
		return &launcher_spark;
	}
	return NULL;
}
