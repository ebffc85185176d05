/* jobfile.c: files of a job's source, read by the root runner (see
 * jobfile.h).  The invariant: no path the job controls makes root read
 * outside the work directory, block, or read without end. */
#include "runner/jobfile.h"

#include "common/err.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/runner.h"
#include "runner/source/source.h"
#include "runner/fence.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
#define CHUNK      65536

/* Without openat2: one component at a time, every symlink refused. */
static int open_by_hand(int dirfd, const char *rel)
{
	char *copy = xstrdup(rel), *comp, *save = NULL, *next;
	int cur = dirfd, fd = -1;

	for (comp = strtok_r(copy, "/", &save); comp != NULL; comp = next) {
		next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			errno = EXDEV;
			break;
		}
		fd = openat(cur, comp,
		            next ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
		                 : OPEN_FLAGS | O_NOFOLLOW);
		if (cur != dirfd)
			close(cur);
		cur = dirfd;
		if (fd < 0 || next == NULL)
			break;
		cur = fd;
		fd = -1;
	}
	if (cur != dirfd)
		close(cur);
	free(copy);
	return fd;
}

static bool no_openat2;

void jobfile_without_openat2(bool yes)
{
	no_openat2 = yes;
}

static int open_beneath(int dirfd, const char *rel)
{
	struct open_how how = {.flags = OPEN_FLAGS,
	                       .resolve =
	                           RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
	int fd = no_openat2
	             ? (errno = ENOSYS, -1)
	             : (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));

	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		return open_by_hand(dirfd, rel); /* old kernel or seccomp */
	return fd;
}

int jobfile_openat(int dirfd, const char *rel, int *out, struct err *e)
{
	struct stat st;
	int fd;

	*out = -1;
	if (rel == NULL || rel[0] == '\0' || rel[0] == '/')
		return err_set(e, TERR_INVAL, "not a relative path");
	if ((fd = open_beneath(dirfd, rel)) < 0) {
		if (errno == EXDEV || errno == ELOOP || errno == ENOTDIR)
			return err_set(
			    e, TERR_PERM,
			    "it leads out of the work directory "
			    "(a symlink or '..'): only files beneath "
			    "it are read");
		return err_sys(e, errno == ENOENT ? TERR_NOTFOUND : TERR_IO,
		               "open");
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, TERR_PERM, "not a regular file");
	}
	fcntl(fd, F_SETFL, O_RDONLY);
	*out = fd;
	return 0;
}

/* Read fd in chunks to fn, at most max bytes, stopping when the attempt
 * must stop. */
static int read_loop(struct runner *r, int fd, size_t max,
                     void (*fn)(void *arg, const char *data, size_t n),
                     void *arg, struct err *e)
{
	char buf[CHUNK];
	size_t total = 0;
	int64_t next = 0;
	const char *stop;
	ssize_t n;

	for (;;) {
		if (r != NULL && now_mono_ms() >= next) {
			if ((stop = source_fenced(r)) != NULL)
				return err_set(e, TERR_CONFLICT, "stopped: %s",
				               stop);
			next = now_mono_ms() + FENCE_CHECK_MS;
		}
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(e, TERR_IO, "read");
		if (n == 0)
			return 0;
		if ((total += (size_t)n) > max)
			return err_set(e, TERR_TOOBIG, "larger than %zu bytes",
			               max);
		fn(arg, buf, (size_t)n);
	}
}

/* Open dir/rel and run the read loop; errors name rel. */
static int jobfile_each(struct runner *r, const char *dir, const char *rel,
                        size_t max,
                        void (*fn)(void *arg, const char *data, size_t n),
                        void *arg, struct err *e)
{
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC), fd = -1, rc;

	if (dfd < 0)
		rc = err_sys(e, TERR_IO, "open %s", dir);
	else if ((rc = jobfile_openat(dfd, rel, &fd, e)) == 0)
		rc = read_loop(r, fd, max, fn, arg, e);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (rc < 0)
		err_wrap(e, "'%s' in the source", rel);
	return rc;
}

struct grow {
	char *data;
	size_t len;
};

static void grow_add(void *arg, const char *data, size_t n)
{
	struct grow *g = arg;

	g->data = realloc(g->data, g->len + n + 1);
	if (g->data == NULL)
		abort();
	memcpy(g->data + g->len, data, n);
	g->len += n;
	g->data[g->len] = '\0';
}

int jobfile_read(struct runner *r, const char *dir, const char *rel, size_t max,
                 char **out, size_t *len, struct err *e)
{
	struct grow g = {xcalloc(1, 1), 0};
	int rc = jobfile_each(r, dir, rel, max, grow_add, &g, e);

	if (rc < 0) {
		free(g.data);
		return rc;
	}
	*out = g.data;
	if (len != NULL)
		*len = g.len;
	return 0;
}

static void hash_add(void *arg, const char *data, size_t n)
{
	sha256_update(arg, data, n);
}

int jobfile_sha256(struct runner *r, const char *dir, const char *rel,
                   size_t max, char out[65], struct err *e)
{
	struct sha256_ctx *h = sha256_new();
	int rc = jobfile_each(r, dir, rel, max, hash_add, h, e);

	sha256_final(h, out);
	return rc;
}
