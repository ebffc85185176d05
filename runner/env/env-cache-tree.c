/* env-cache-tree.c: walking an environment's tree for the cache: its
 * size for the usage record, and sealing it (root's, read-only for
 * others) after a build by the job user. */
#include "runner/env/env.h"

#include "common/util.h"
#include "runner/runner.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TREE_MAX_DEPTH 65

static void add_size(const char *path, const struct stat *st, void *arg)
{
	(void)path;
	*(int64_t *)arg += (int64_t)st->st_blocks * 512;
}

/* Give to root and drop group/other write (links: owner only). */
static void seal_one(const char *path, const struct stat *st, void *arg)
{
	(void)arg;
	if (lchown(path, 0, 0) < 0 || S_ISLNK(st->st_mode))
		return;
	chmod(path, st->st_mode & 07755 & ~(mode_t)(S_ISUID | S_ISGID));
}

void env_cache_seal(const char *env_dir, const char *key)
{
	char *path = xasprintf("%s/%s", env_dir, key);

	if (geteuid() == 0)
		runner_tree_walk(path, TREE_MAX_DEPTH, seal_one, NULL);
	free(path);
}

int64_t env_cache_tree_size(const char *path)
{
	int64_t total = 0;

	runner_tree_walk(path, TREE_MAX_DEPTH, add_size, &total);
	return total;
}
