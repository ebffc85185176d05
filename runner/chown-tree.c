/* chown-tree.c: walking a directory tree without following symlinks
 * (runner_tree_walk: the env cache's size and sealing use it too), and
 * handing a tree (the work directory after the source phase, the job's
 * directories before a container starts) to the job user. */
#include "common/err.h"
#include "common/util.h"
#include "runner/runner.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHOWN_MAX_DEPTH 256

static int walk(const char *path, int depth, int max_depth,
                void (*fn)(const char *path, const struct stat *st, void *arg),
                void *arg)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (lstat(path, &st) < 0)
		return -1;
	fn(path, &st, arg);
	if (!S_ISDIR(st.st_mode))
		return 0;
	if (depth >= max_depth || (d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", path, de->d_name);
		if (walk(p, depth + 1, max_depth, fn, arg) < 0)
			rc = -1;
		free(p);
	}
	closedir(d);
	return rc;
}

int runner_tree_walk(const char *path, int max_depth,
                     void (*fn)(const char *path, const struct stat *st,
                                void *arg),
                     void *arg)
{
	return walk(path, 0, max_depth, fn, arg);
}

struct chown_arg {
	uid_t uid;
	gid_t gid;
	struct err first; /* the first failure; the walk goes on */
};

static void chown_one(const char *path, const struct stat *st, void *arg)
{
	struct chown_arg *a = arg;

	if ((st->st_uid != a->uid || st->st_gid != a->gid) &&
	    lchown(path, a->uid, a->gid) < 0 && a->first.code == 0)
		err_sys(&a->first, TERR_IO, "chown %s to %u:%u", path,
		        (unsigned)a->uid, (unsigned)a->gid);
}

int runner_chown_tree(const char *path, uid_t uid, gid_t gid, struct err *e)
{
	struct chown_arg a = {.uid = uid, .gid = gid};

	if (runner_tree_walk(path, CHOWN_MAX_DEPTH, chown_one, &a) < 0 &&
	    a.first.code == 0)
		err_set(&a.first, TERR_IO,
		        "chown %s: a directory in it is unreadable or too deep",
		        path);
	if (a.first.code < 0)
		return err_set(e, a.first.code, "%s", a.first.msg);
	return 0;
}
