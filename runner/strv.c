/* strv.c: freeing a NULL-terminated vector of heap strings (argv, envp,
 * pattern lists, the sbatch argv).  Its own file so that any runner object can
 * use it without pulling in another module. */
#include "common/util.h"
#include "runner/runner.h"

#include <stdlib.h>

void runner_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void runner_strv_freezero(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		freezero_str(v[i]);
	free(v);
}
