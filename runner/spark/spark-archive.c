/* spark-archive.c: the job's environment packed for the executors.
 *
 * <env_dir>/.spark/<key>/env.tar.gz is the cached environment <key>
 * (venv or conda prefix) as a gzipped tar, built once per key (flock on
 * <env_dir>/.spark/<key>.lock), under a temp name, fsynced and renamed, so
 * it is whole or absent.  The walk never follows a symlink (a venv's
 * bin/python is stored as the link it is) and packs only directories,
 * regular files and symlinks.  The launcher binds the directory read-only
 * into the sandbox and passes the archive to spark-submit's --archives;
 * eviction of the environment removes it (env-cache.c).  docs/spark.md. */
#include "runner/spark/spark.h"
#include "runner/runner.h"
#include "runner/tarpack.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_root(const char *path, struct err *e)
{
	struct stat st;

	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return err_sys(e, TERR_IO, "mkdir %s", path);
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid())
		return err_set(e, TERR_IO, "%s: not a directory of ours", path);
	return 0;
}

int spark_env_archive(struct runner *r, char **dir_out, struct err *e)
{
	char *base = xasprintf("%s/.spark", r->set.env_dir);
	char *dir = xasprintf("%s/%s", base, r->env.key);
	char *lock = xasprintf("%s/%s.lock", base, r->env.key);
	char *file = xasprintf("%s/%s", dir, SPARK_ENV_ARCHIVE);
	char *part = xasprintf("%s.tmp.%d", file, (int)getpid());
	int64_t files = 0, t0 = now_mono_ms();
	int lfd = -1, fd, rc;
	struct stat st;

	if ((rc = mkdir_root(base, e)) < 0 || (rc = mkdir_root(dir, e)) < 0)
		goto out;
	lfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX) < 0) {
		rc = err_sys(e, TERR_IO, "lock %s", lock);
		goto out;
	}
	if (lstat(file, &st) == 0 && S_ISREG(st.st_mode)) {
		runner_logf(r, "spark",
		            "environment %.12s for the executors: cached (%lld "
		            "bytes)",
		            r->env.key, (long long)st.st_size);
		goto done;
	}
	if ((rc = tarpack_tree(r->env.prefix, part, true, &files, e)) < 0)
		goto out;
	if ((fd = open(part, O_RDONLY | O_CLOEXEC)) < 0 || fsync(fd) < 0 ||
	    fchmod(fd, 0644) < 0 || fstat(fd, &st) < 0) {
		rc = err_sys(e, TERR_IO, "fsync %s", part);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	if (rename(part, file) < 0) {
		rc = err_sys(e, TERR_IO, "rename %s", part);
		goto out;
	}
	dir_fsync(dir, NULL);
	runner_logf(r, "spark",
	            "environment %.12s packed for the executors: %lld files, "
	            "%lld bytes, %.1f s",
	            r->env.key, (long long)files, (long long)st.st_size,
	            (double)(now_mono_ms() - t0) / 1000.0);
done:
	*dir_out = dir;
	dir = NULL;
out:
	if (rc < 0)
		unlink(part);
	if (lfd >= 0)
		close(lfd);
	free(base);
	free(dir);
	free(lock);
	free(file);
	free(part);
	return rc;
}
