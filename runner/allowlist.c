/* allowlist.c: matching a job's data mount against allowed_mounts
 * (docs/sandbox.md, docs/docker.md). */
#include "runner/allowlist.h"

#include "runner/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when path is dir or below it. */
static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/' || n == 1);
}

static void resolve(const char *path, char out[PATH_MAX])
{
	if (realpath(path, out) == NULL)
		snprintf(out, PATH_MAX, "%s", path);
}

const struct attempt_mount *
allowlist_entry(const struct runner *r, const char *source, char real[PATH_MAX])
{
	char dir[PATH_MAX];

	resolve(source, real);
	for (size_t i = 0; i < r->set.nmounts; i++) {
		resolve(r->set.mounts[i].source, dir);
		if (path_under(real, dir))
			return &r->set.mounts[i];
	}
	return NULL;
}

bool allowlist_readonly(const struct attempt_mount *entry, bool job_readonly)
{
	return job_readonly || entry->readonly;
}
