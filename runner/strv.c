/* strv.c: freeing a NULL-terminated vector of heap strings (argv, envp,
 * pattern lists).  Its own file so that any runner object can use it
 * without pulling in another module. */
#include "runner/runner.h"

#include <stdlib.h>

void runner_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}
