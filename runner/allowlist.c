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

json_t *allowlist_entry(const struct runner *r, const char *source,
                        char real[PATH_MAX])
{
	json_t *list = json_object_get(r->settings, "allowed_mounts"), *m;
	char dir[PATH_MAX];
	size_t i;

	resolve(source, real);
	json_array_foreach(list, i, m)
	{
		const char *s = json_string_value(json_object_get(m, "source"));

		if (s == NULL)
			continue;
		resolve(s, dir);
		if (path_under(real, dir))
			return m;
	}
	return NULL;
}

bool allowlist_readonly(const json_t *entry, bool job_readonly)
{
	return job_readonly ||
	       !json_is_false(json_object_get(entry, "readonly"));
}
