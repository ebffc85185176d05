/* sandbox-mount.c: the job's root filesystem, built in the sandbox's own
 * mount namespace (docs/sandbox.md):
 *   - a small tmpfs (unbindable) as the new root, read-only at the end;
 *   - every top-level entry of the host root bind-mounted recursively and
 *     read-only (mount_setattr AT_RECURSIVE), symlinks recreated;
 *   - fresh /proc for the new pid namespace, private /tmp and /dev/shm;
 *   - /tether/work, /tether/outputs, /tether/checkpoints writable binds;
 *   - allowed data mounts; the state directory hidden under an empty
 *     read-only tmpfs; the environment prefix bound at its own path
 *     (read-only, or writable for the build of that environment);
 *   - pivot_root into it, the host root detached. */
#include "common/err.h"
#include "common/fileio.h"
#include "runner/sandbox/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct mctx {
	const struct sandbox_cfg *c;
	char *msg;
	size_t size;
};

static int failf(struct mctx *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record "<what>: strerror(errno)" and return -1. */
static int failf(struct mctx *m, const char *fmt, ...)
{
	int saved = errno, n;
	va_list ap;

	va_start(ap, fmt);
	n = vsnprintf(m->msg, m->size, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < m->size)
		snprintf(m->msg + n, m->size - (size_t)n, ": %s",
		         strerror(saved));
	return -1;
}

static char *in_root(const struct sandbox_cfg *c, const char *path, char *buf)
{
	snprintf(buf, PATH_MAX, "%s%s", c->root, path);
	return buf;
}

static int set_attr(const char *path, uint64_t set, unsigned int flags)
{
	struct mount_attr a = {.attr_set = set};

	return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &a,
	                    sizeof(a));
}

/* Bind src at dst (recursively), then make the whole subtree ro. */
static int bind_ro(struct mctx *m, const char *src, const char *dst,
                   uint64_t extra)
{
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return failf(m, "bind %s", src);
	if (set_attr(dst, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | extra,
	             AT_RECURSIVE) < 0)
		return failf(m, "read-only %s (needs Linux >= 5.12)", src);
	return 0;
}

static int bind_rw(struct mctx *m, const char *src, const char *dst)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		return failf(m, "mkdir %s", dst);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return failf(m, "bind %s", src);
	if (set_attr(dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0) < 0)
		return failf(m, "nosuid %s", src);
	return 0;
}

static bool skip_top(const char *name)
{
	static const char *const skip[] = {".",   "..",     "proc",
	                                   "tmp", "tether", NULL};

	for (size_t i = 0; skip[i] != NULL; i++)
		if (strcmp(name, skip[i]) == 0)
			return true;
	return false;
}

static int copy_top_entry(struct mctx *m, const char *name)
{
	char src[PATH_MAX], dst[PATH_MAX], target[PATH_MAX];
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(src, sizeof(src), "/%s", name);
	snprintf(dst, sizeof(dst), "%s/%s", m->c->root, name);
	if (lstat(src, &st) < 0)
		return 0; /* vanished */
	if (S_ISLNK(st.st_mode)) {
		if ((n = readlink(src, target, sizeof(target) - 1)) < 0)
			return failf(m, "readlink %s", src);
		target[n] = '\0';
		return symlink(target, dst) < 0 ? failf(m, "symlink %s", dst)
		                                : 0;
	}
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(dst, 0755) < 0)
			return failf(m, "mkdir %s", dst);
	} else if (S_ISREG(st.st_mode)) {
		if ((fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) < 0)
			return failf(m, "create %s", dst);
		close(fd);
	} else {
		return 0;
	}
	return bind_ro(m, src, dst,
	               strcmp(name, "dev") == 0 ? 0 : MOUNT_ATTR_NODEV);
}

static int copy_host_root(struct mctx *m)
{
	DIR *d = opendir("/");
	struct dirent *de;
	int rc = 0;

	if (d == NULL)
		return failf(m, "open /");
	while (rc == 0 && (de = readdir(d)) != NULL)
		if (!skip_top(de->d_name))
			rc = copy_top_entry(m, de->d_name);
	closedir(d);
	return rc;
}

static int mount_tmpfs(struct mctx *m, const char *dst, const char *opts,
                       unsigned long flags)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		return failf(m, "mkdir %s", dst);
	if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | flags, opts) <
	    0)
		return failf(m, "tmpfs %s", dst);
	return 0;
}

/* The environment prefix at its own path inside the root, whatever hides
 * it there (the masked state dir, the private /tmp): src_fd (the host
 * directory, opened before anything was mounted) is bound on it. */
static int mount_env(struct mctx *m, int src_fd)
{
	const struct sandbox_cfg *c = m->c;
	char p[PATH_MAX], src[64];
	struct err e = {0};

	in_root(c, c->env_prefix, p);
	if (mkdir_p(p, 0755, &e) < 0) {
		snprintf(m->msg, m->size, "environment %s: %s", c->env_prefix,
		         e.msg);
		return -1;
	}
	snprintf(src, sizeof(src), "/proc/self/fd/%d", src_fd);
	if (mount(src, p, NULL, MS_BIND, NULL) < 0)
		return failf(m, "bind the environment %s", c->env_prefix);
	if (set_attr(p,
	             MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
	                 (c->env_rw ? 0 : MOUNT_ATTR_RDONLY),
	             0) < 0)
		return failf(m, "protect the environment %s", c->env_prefix);
	return 0;
}

/* The state dir (credentials, other jobs) is not the job's: an empty
 * tmpfs over it, read-only once the environment is bound inside it. */
static int hide_state_dir(struct mctx *m, bool *hidden)
{
	char p[PATH_MAX];

	*hidden = false;
	if (m->c->state_dir == NULL || m->c->state_dir[0] != '/' ||
	    access(in_root(m->c, m->c->state_dir, p), F_OK) < 0)
		return 0; /* not visible (under the private /tmp) */
	if (mount("tether-statedir", p, "tmpfs",
	          MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
		return failf(m, "hide %s", m->c->state_dir);
	*hidden = true;
	return 0;
}

static int seal_state_dir(struct mctx *m)
{
	char p[PATH_MAX];

	in_root(m->c, m->c->state_dir, p);
	if (mount(NULL, p, NULL,
	          MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          "mode=0755,size=64k") < 0)
		return failf(m, "read-only %s", m->c->state_dir);
	return 0;
}

/* /tether/work and, for a job (not an environment build), its outputs
 * and checkpoints. */
static int mount_tether(struct mctx *m)
{
	char p[PATH_MAX];
	const struct sandbox_cfg *c = m->c;

	if (mkdir(in_root(c, "/tether", p), 0755) < 0)
		return failf(m, "mkdir /tether");
	if (bind_rw(m, c->work, in_root(c, "/tether/work", p)) < 0)
		return -1;
	if (c->outputs != NULL &&
	    bind_rw(m, c->outputs, in_root(c, "/tether/outputs", p)) < 0)
		return -1;
	if (c->checkpoints != NULL &&
	    bind_rw(m, c->checkpoints, in_root(c, "/tether/checkpoints", p)) <
	        0)
		return -1;
	return 0;
}

static int mount_specials(struct mctx *m)
{
	char p[PATH_MAX], tmpopt[64] = "mode=1777";
	const struct sandbox_cfg *c = m->c;
	const char *env_src = c->env_src ? c->env_src : c->env_prefix;
	int env_fd = -1, rc = -1;
	bool hidden = false;

	if (env_src != NULL &&
	    (env_fd = open(env_src, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return failf(m, "environment %s", env_src);
	if (mkdir(in_root(c, "/proc", p), 0555) < 0 ||
	    mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
	        0) {
		failf(m, "mount /proc");
		goto out;
	}
	if (c->tmp_size > 0) /* bounded by the disk budget (disk.c) */
		snprintf(tmpopt, sizeof(tmpopt), "mode=1777,size=%lld",
		         (long long)c->tmp_size);
	if (mount_tmpfs(m, in_root(c, "/tmp", p), tmpopt, 0) < 0)
		goto out;
	if (access(in_root(c, "/dev/shm", p), F_OK) == 0 &&
	    mount_tmpfs(m, p, tmpopt, 0) < 0)
		goto out;
	if (mount_tether(m) < 0 || hide_state_dir(m, &hidden) < 0 ||
	    (env_fd >= 0 && mount_env(m, env_fd) < 0) ||
	    (hidden && seal_state_dir(m) < 0))
		goto out;
	rc = 0;
out:
	if (env_fd >= 0)
		close(env_fd);
	return rc;
}

/* mkdir -p for a mount target inside the new root. */
static int make_target(struct mctx *m, const char *target)
{
	char p[PATH_MAX], *s;

	in_root(m->c, target, p);
	for (s = p + strlen(m->c->root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			*s = '/';
			return failf(m,
			             "mount target %s cannot be created "
			             "(read-only parent)",
			             target);
		}
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return failf(m, "mount target %s cannot be created", target);
	return 0;
}

static int mount_data(struct mctx *m)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < m->c->nmounts; i++) {
		const struct sandbox_mount *dm = &m->c->mounts[i];
		if (make_target(m, dm->target) < 0)
			return -1;
		in_root(m->c, dm->target, p);
		if (dm->readonly ? bind_ro(m, dm->source, p, MOUNT_ATTR_NODEV)
		                 : bind_rw(m, dm->source, p))
			return -1;
	}
	return 0;
}

static int pivot(struct mctx *m)
{
	if (set_attr(m->c->root, MOUNT_ATTR_RDONLY, 0) < 0)
		return failf(m, "read-only root");
	if (chdir(m->c->root) < 0)
		return failf(m, "chdir %s", m->c->root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return failf(m, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return failf(m, "detach the host root");
	if (chdir("/") < 0)
		return failf(m, "chdir /");
	return 0;
}

int sandbox_mount_root(const struct sandbox_cfg *c, char *msg, size_t size)
{
	struct mctx m = {c, msg, size};

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return failf(&m, "make / private");
	if (mount("tether-root", c->root, "tmpfs", MS_NOSUID | MS_NODEV,
	          "mode=0755,size=1m") < 0)
		return failf(&m, "tmpfs root %s", c->root);
	/* Unbindable: the recursive binds of / below must not copy it. */
	if (mount(NULL, c->root, NULL, MS_UNBINDABLE, NULL) < 0)
		return failf(&m, "unbindable %s", c->root);
	if (copy_host_root(&m) < 0 || mount_specials(&m) < 0 ||
	    mount_data(&m) < 0)
		return -1;
	return pivot(&m);
}
