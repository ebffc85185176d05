/* launcher.c: the launcher for a kind.
 *
 * Docker and Slurm live in launcher-docker.c and launcher-slurm.c.  When a
 * file is in the tree it is referenced normally (a weak reference would not
 * pull it out of the static library); when it is not, the reference is
 * weak, so the runner still links and launcher_for() returns NULL for it
 * ("not built into this runner"). */
#include "runner/launcher.h"
#include "common/jobspec.h"

#include <stddef.h>

#if __has_include("launcher-docker.c")
#define DOCKER_OPS (&launcher_docker)
#else
__attribute__((weak)) extern const struct launcher_ops launcher_docker;
#define DOCKER_OPS (&launcher_docker != NULL ? &launcher_docker : NULL)
#endif

#if __has_include("launcher-slurm.c")
#define SLURM_OPS (&launcher_slurm)
#else
__attribute__((weak)) extern const struct launcher_ops launcher_slurm;
#define SLURM_OPS (&launcher_slurm != NULL ? &launcher_slurm : NULL)
#endif

const struct launcher_ops *launcher_for(enum launcher_kind k)
{
	switch (k) {
	case LAUNCHER_DEFAULT:
	case LAUNCHER_SANDBOX:
		return &launcher_sandbox;
	case LAUNCHER_DOCKER:
		return DOCKER_OPS;
	case LAUNCHER_SLURM:
		return SLURM_OPS;
	}
	return NULL;
}
