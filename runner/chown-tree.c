/* chown-tree.c: handing a directory tree (the work directory after the
 * source phase, the job's directories before a container starts) to the
 * job user.  Symlinks are changed themselves, never followed. */
#include "common/err.h"
#include "common/util.h"
#include "runner/runner.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHOWN_MAX_DEPTH 256

/* Goes on past failures; the first one stays in first. */
static void chown_at(const char *path, uid_t uid, gid_t gid, int depth,
                     struct err *first)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	if (lstat(path, &st) < 0) {
		if (first->code == 0)
			err_sys(first, TERR_IO, "stat %s", path);
		return;
	}
	if ((st.st_uid != uid || st.st_gid != gid) &&
	    lchown(path, uid, gid) < 0 && first->code == 0)
		err_sys(first, TERR_IO, "chown %s to %u:%u", path,
		        (unsigned)uid, (unsigned)gid);
	if (!S_ISDIR(st.st_mode))
		return;
	if (depth >= CHOWN_MAX_DEPTH || (d = opendir(path)) == NULL) {
		if (first->code == 0)
			err_set(first, TERR_IO,
			        "chown %s: too deep or unreadable", path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", path, de->d_name);
		chown_at(p, uid, gid, depth + 1, first);
		free(p);
	}
	closedir(d);
}

int runner_chown_tree(const char *path, uid_t uid, gid_t gid, struct err *e)
{
	struct err first = {0};

	chown_at(path, uid, gid, 0, &first);
	if (first.code < 0)
		return err_set(e, first.code, "%s", first.msg);
	return 0;
}
