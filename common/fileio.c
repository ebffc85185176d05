#define _XOPEN_SOURCE 700
#include "common/fileio.h"
#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fd_write_all(int fd, const void *data, size_t len, struct err *e)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(e, TERR_IO, "write");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fd_pwrite_all(int fd, const void *data, size_t len, int64_t off,
                  struct err *e)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return err_sys(e, TERR_IO, "write at %lld",
			               (long long)off);
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int fd_pread_all(int fd, void *buf, size_t len, int64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int dir_fsync(const char *dir, struct err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return err_sys(e, TERR_IO, "open %s", dir);
	if (fsync(fd) < 0)
		r = err_sys(e, TERR_IO, "fsync %s", dir);
	close(fd);
	return r;
}

/* Temp file, write, (fsync), rename, (fsync the directory). */
static int write_replace(const char *path, const void *data, size_t len,
                         mode_t mode, bool durable, struct err *e)
{
	char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	char *dcopy = xstrdup(path);
	int fd = -1, r = 0;

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = err_sys(e, TERR_IO, "create %s", tmp);
		goto out;
	}
	if (fchmod(fd, mode) < 0) {
		r = err_sys(e, TERR_IO, "chmod %s", tmp);
		goto out;
	}
	if ((r = fd_write_all(fd, data, len, e)) < 0) {
		err_wrap(e, "%s", tmp);
		goto out;
	}
	if (durable && fsync(fd) < 0) {
		r = err_sys(e, TERR_IO, "fsync %s", tmp);
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = err_sys(e, TERR_IO, "rename %s", path);
		goto out;
	}
	if (durable)
		r = dir_fsync(dirname(dcopy), e);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	free(tmp);
	free(dcopy);
	return r;
}

int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, struct err *e)
{
	return write_replace(path, data, len, mode, true, e);
}

int file_replace(const char *path, const void *data, size_t len, mode_t mode,
                 struct err *e)
{
	return write_replace(path, data, len, mode, false, e);
}

int file_read_all(const char *path, size_t cap, char **out, size_t *out_len,
                  struct err *e)
{
	size_t len = 0, size = 4096;
	char *buf = NULL;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno == ENOENT ? TERR_NOTFOUND : TERR_IO,
		               "open %s", path);
	buf = malloc(size);
	for (;;) {
		ssize_t n;
		if (buf == NULL) {
			r = err_set(e, TERR_NOMEM, "read %s: out of memory",
			            path);
			goto out;
		}
		if (len + 1 >= size) {
			char *nb;
			size *= 2;
			nb = realloc(buf, size);
			if (nb == NULL)
				free(buf);
			buf = nb;
			continue;
		}
		n = read(fd, buf + len, size - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_sys(e, TERR_IO, "read %s", path);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > cap) {
			r = err_set(e, TERR_TOOBIG,
			            "%s is larger than %zu bytes", path, cap);
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	if (out_len != NULL)
		*out_len = len;
out:
	free(buf);
	close(fd);
	return r;
}

int mkdir_p(const char *path, mode_t mode, struct err *e)
{
	char *p;
	int r = 0;

	/* The parent exists (the usual case): one call, not one per
	 * component of the path. */
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	p = xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			r = err_sys(e, TERR_IO, "mkdir %s", p);
			break;
		}
		*s = saved;
		if (saved == '\0')
			break;
	}
	free(p);
	return r;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path, struct err *e)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
		                       : err_sys(e, TERR_IO, "stat %s", path);
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return err_sys(e, TERR_IO, "remove %s", path);
	return 0;
}
