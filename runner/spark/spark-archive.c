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
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_data(struct archive *in, struct archive *out, struct err *e)
{
	char buf[65536];
	la_ssize_t n;

	while ((n = archive_read_data(in, buf, sizeof(buf))) > 0)
		if (archive_write_data(out, buf, (size_t)n) != n)
			return err_set(e, TERR_IO, "write archive: %s",
			               archive_error_string(out));
	if (n < 0)
		return err_set(e, TERR_IO, "read: %s",
		               archive_error_string(in));
	return 0;
}

/* Pack the tree at prefix into path, names relative to prefix. */
static int pack(const char *prefix, const char *path, int64_t *files,
                struct err *e)
{
	struct archive *in = archive_read_disk_new();
	struct archive *out = archive_write_new();
	size_t plen = strlen(prefix);
	struct archive_entry *ent;
	int rc = 0, ar;

	archive_read_disk_set_symlink_physical(in);
	archive_read_disk_set_behavior(in, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
	archive_write_add_filter_gzip(out);
	archive_write_set_format_pax_restricted(out);
	if (archive_write_open_filename(out, path) != ARCHIVE_OK ||
	    archive_read_disk_open(in, prefix) != ARCHIVE_OK) {
		rc = err_set(e, TERR_IO, "open: %s / %s",
		             archive_error_string(out),
		             archive_error_string(in));
		goto out;
	}
	while (rc == 0) {
		const char *p;
		mode_t t;
		ent = archive_entry_new();
		ar = archive_read_next_header2(in, ent);
		if (ar == ARCHIVE_EOF) {
			archive_entry_free(ent);
			break;
		}
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			rc = err_set(e, TERR_IO, "walk %s: %s", prefix,
			             archive_error_string(in));
			archive_entry_free(ent);
			break;
		}
		archive_read_disk_descend(in);
		p = archive_entry_pathname(ent);
		t = archive_entry_filetype(ent);
		if (strncmp(p, prefix, plen) == 0 && p[plen] == '/' &&
		    (t == AE_IFREG || t == AE_IFDIR || t == AE_IFLNK)) {
			archive_entry_copy_pathname(ent, p + plen + 1);
			archive_entry_set_uid(ent, 0);
			archive_entry_set_gid(ent, 0);
			archive_entry_copy_uname(ent, NULL);
			archive_entry_copy_gname(ent, NULL);
			if (archive_write_header(out, ent) != ARCHIVE_OK)
				rc = err_set(e, TERR_IO, "write archive: %s",
				             archive_error_string(out));
			else if (t == AE_IFREG && ++*files > 0)
				rc = copy_data(in, out, e);
		}
		archive_entry_free(ent);
	}
	if (rc == 0 && archive_write_close(out) != ARCHIVE_OK)
		rc = err_set(e, TERR_IO, "finish archive: %s",
		             archive_error_string(out));
out:
	archive_read_free(in);
	archive_write_free(out);
	return rc;
}

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
	if ((rc = pack(r->env.prefix, part, &files, e)) < 0)
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
