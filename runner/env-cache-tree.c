/* env-cache-tree.c: walking an environment's tree for the cache: its
 * size for the usage record, and sealing it (root's, read-only for
 * others) after a build by the job user. */
#include "runner/env.h"

#include "common/util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Disk usage of a tree in bytes (blocks), not following symlinks. */
static int64_t tree_size(const char *path, int depth)
{
	struct stat st;
	int64_t total;
	DIR *d;
	struct dirent *de;

	if (lstat(path, &st) < 0)
		return 0;
	total = (int64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode) || depth > 64 || (d = opendir(path)) == NULL)
		return total;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", path, de->d_name);
		total += tree_size(p, depth + 1);
		free(p);
	}
	closedir(d);
	return total;
}

/* Give a tree to root and drop group/other write, not following links. */
static void tree_seal(const char *path, int depth)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (lstat(path, &st) < 0 || lchown(path, 0, 0) < 0)
		return;
	if (S_ISLNK(st.st_mode))
		return;
	chmod(path, st.st_mode & 07755 & ~(mode_t)(S_ISUID | S_ISGID));
	if (!S_ISDIR(st.st_mode) || depth > 64 || (d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", path, de->d_name);
		tree_seal(p, depth + 1);
		free(p);
	}
	closedir(d);
}

void env_cache_seal(const char *env_dir, const char *key)
{
	char *path = xasprintf("%s/%s", env_dir, key);

	if (geteuid() == 0)
		tree_seal(path, 0);
	free(path);
}

int64_t env_cache_tree_size(const char *path)
{
	return tree_size(path, 0);
}
