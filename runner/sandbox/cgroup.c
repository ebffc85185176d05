/* cgroup.c: the attempt's cgroup, v1 or v2 (see cgroup.h). */
#include "runner/sandbox/cgroup.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <libcgroup.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CGROUP_ROOT "/sys/fs/cgroup"

static const struct cgroup_ops *cgroup_detect(void)
{
	struct statfs sf;

	if (statfs(CGROUP_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		return &cgroup_v2_ops;
	return &cgroup_v1_ops;
}

static int cgroup_lib_init(struct err *e)
{
	static int done, rc;

	if (!done) {
		rc = cgroup_init();
		done = 1;
	}
	if (rc != 0)
		return err_set(e, TERR_UNSUPP, "libcgroup init: %s",
		               cgroup_strerror(rc));
	return 0;
}

char *cgroup_job_dir(struct job_cgroup *cg, const char *controller)
{
	char *mp = NULL, *dir;

	if (cg->ops->version == 2)
		return xasprintf("%s/%s", cg->v2_root, cg->path);
	if (cgroup_get_subsys_mount_point(controller, &mp) != 0 || !mp) {
		free(mp);
		mp = xasprintf("%s/%s", CGROUP_ROOT, controller);
	}
	dir = xasprintf("%s/%s", mp, cg->path);
	free(mp);
	return dir;
}

int cgroup_job_write(struct job_cgroup *cg, const char *controller,
                     const char *file, const char *value, struct err *e)
{
	char *dir = cgroup_job_dir(cg, controller);
	char *path = xasprintf("%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		rc = err_sys(e, TERR_IO, "cgroup write %s '%s'", path, value);
	if (fd >= 0)
		close(fd);
	free(path);
	free(dir);
	return rc;
}

int cgroup_job_read(struct job_cgroup *cg, const char *controller,
                    const char *file, char *buf, size_t size)
{
	char *dir = cgroup_job_dir(cg, controller);
	char *path = xasprintf("%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = TERR_IO;
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, buf, size - 1);
		close(fd);
	}
	if (n >= 0) {
		buf[n] = '\0';
		rc = 0;
	}
	free(path);
	free(dir);
	return rc;
}

int64_t cgroup_job_read_i64(struct job_cgroup *cg, const char *controller,
                            const char *file)
{
	char buf[64];
	long long v;

	if (cgroup_job_read(cg, controller, file, buf, sizeof(buf)) < 0)
		return -1;
	if (strncmp(buf, "max", 3) == 0 || sscanf(buf, "%lld", &v) != 1)
		return -1;
	return v;
}

int64_t cgroup_job_read_key(struct job_cgroup *cg, const char *controller,
                            const char *file, const char *key)
{
	char buf[4096], *p = buf;
	size_t klen = strlen(key);
	long long v;

	if (cgroup_job_read(cg, controller, file, buf, sizeof(buf)) < 0)
		return -1;
	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ' &&
		    sscanf(p + klen + 1, "%lld", &v) == 1)
			return v;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return -1;
}

/* Major number of a character device driver in /proc/devices, or -1. */
int cgroup_char_major(const char *driver)
{
	FILE *f = fopen("/proc/devices", "re");
	char line[128], name[64];
	int major, found = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Block", 5) == 0)
			break;
		if (sscanf(line, "%d %63s", &major, name) == 2 &&
		    strcmp(name, driver) == 0)
			found = major;
	}
	fclose(f);
	return found;
}

/* v1: make the group in each controller's hierarchy with one mkdir each
 * when its parent exists (made by an earlier attempt: the usual case).
 * libcgroup's create walks every parent of every controller with a failing
 * mkdir and reads /proc/mounts once per controller (≈ 50 system calls);
 * false leaves it to libcgroup (a parent to make, or v2). */
static bool mkdir_v1(struct job_cgroup *cg)
{
	for (size_t i = 0; cg->ops->version == 1 && cg->ops->controllers[i];
	     i++) {
		char *dir = cgroup_job_dir(cg, cg->ops->controllers[i]);
		int rc = mkdir(dir, 0775);

		free(dir);
		if (rc < 0 && errno != EEXIST)
			return false;
	}
	return cg->ops->version == 1;
}

/* v1, the group empty: one rmdir per controller; false leaves it to
 * libcgroup's delete (which first moves what is left to the parent). */
static bool rmdir_v1(struct job_cgroup *cg)
{
	for (size_t i = 0; cg->ops->version == 1 && cg->ops->controllers[i];
	     i++) {
		char *dir = cgroup_job_dir(cg, cg->ops->controllers[i]);
		int rc = rmdir(dir);

		free(dir);
		if (rc < 0 && errno != ENOENT)
			return false;
	}
	return cg->ops->version == 1;
}

/* The job's group as libcgroup sees it (parent/name, every controller of
 * this host's version), not made or checked yet; *out even on error. */
static int job_cgroup_new(const char *parent, const char *name, bool need_all,
                          struct job_cgroup **out, struct err *e)
{
	struct job_cgroup *cg = xcalloc(1, sizeof(*cg));
	int rc;

	*out = cg;
	cg->ops = cgroup_detect();
	snprintf(cg->v2_root, sizeof(cg->v2_root), "%s", CGROUP_ROOT);
	snprintf(cg->path, sizeof(cg->path), "%s/%s", parent, name);
	if ((rc = cgroup_lib_init(e)) < 0)
		return rc;
	cg->lib = cgroup_new_cgroup(cg->path);
	for (size_t i = 0; cg->lib && cg->ops->controllers[i]; i++)
		if (!cgroup_add_controller(cg->lib, cg->ops->controllers[i]) &&
		    need_all)
			return err_set(e, TERR_UNSUPP,
			               "cgroup controller '%s' unavailable",
			               cg->ops->controllers[i]);
	return 0;
}

int cgroup_job_create(const char *parent, const char *name,
                      const struct cgroup_limits *lim, struct job_cgroup **out,
                      struct err *e)
{
	struct job_cgroup *cg;
	char *dir = NULL;
	int rc;

	if ((rc = job_cgroup_new(parent, name, true, &cg, e)) < 0)
		goto out;
	/* A group left by a crashed runner holds its processes and limits. */
	dir = cg->lib ? cgroup_job_dir(cg, cg->ops->procs_controller) : NULL;
	cg->fresh = dir != NULL && access(dir, F_OK) < 0 && errno == ENOENT;
	/* ignore_ownership: the group stays root's, as its parent is; without
	 * it libcgroup chowns (to root) every control file of every
	 * controller, some 100 chown calls per attempt. */
	if (cg->lib == NULL ||
	    (!mkdir_v1(cg) && (rc = cgroup_create_cgroup(cg->lib, 1)) != 0)) {
		rc = err_set(e, TERR_IO, "create cgroup %s: %s", cg->path,
		             cg->lib ? cgroup_strerror(rc) : "out of memory");
		goto out;
	}
	if (!cg->fresh && cgroup_job_count(cg) > 0)
		cgroup_job_kill(cg, 2000, NULL); /* leftover of a crash */
	if ((rc = cg->ops->limit(cg, lim, e)) < 0) {
		err_wrap(e, "cgroup %s", cg->path);
		goto out;
	}
	*out = cg;
	cg = NULL;
out:
	free(dir);
	cgroup_job_destroy(cg);
	return rc;
}

int cgroup_job_open(const char *parent, const char *name,
                    struct job_cgroup **out, struct err *e)
{
	struct job_cgroup *cg;
	char *dir = NULL;
	int rc;

	if ((rc = job_cgroup_new(parent, name, false, &cg, e)) < 0)
		goto out;
	dir = cg->lib ? cgroup_job_dir(cg, cg->ops->procs_controller) : NULL;
	if (dir == NULL || access(dir, F_OK) < 0) {
		rc = err_set(e, TERR_NOTFOUND, "cgroup %s is gone", cg->path);
		goto out;
	}
	*out = cg;
	cg = NULL;
out:
	free(dir);
	cgroup_job_destroy(cg);
	return rc;
}

int cgroup_job_attach(struct job_cgroup *cg, pid_t pid, struct err *e)
{
	int rc = cgroup_attach_task_pid(cg->lib, pid);

	if (rc != 0)
		return err_set(e, TERR_IO, "attach %d to cgroup %s: %s",
		               (int)pid, cg->path, cgroup_strerror(rc));
	return 0;
}

/* clone3 into the group's v2 directory; -1 with errno where that is not
 * possible (v1, a kernel before 5.7: ENOSYS, E2BIG or EINVAL). */
static pid_t clone_into(struct job_cgroup *cg, unsigned long ns_flags)
{
	struct clone_args ca;
	char *dir;
	int fd, saved;
	pid_t pid;

	if (cg->ops->version != 2) {
		errno = EOPNOTSUPP;
		return -1;
	}
	dir = cgroup_job_dir(cg, NULL);
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	memset(&ca, 0, sizeof(ca));
	ca.flags = ns_flags | CLONE_INTO_CGROUP;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = (uint64_t)fd;
	/* no stack given: the child goes on on a copy of this one, as after
	 * fork() */
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	saved = errno;
	close(fd); /* in both: pid 1 keeps no handle on its group */
	errno = saved;
	return pid;
}

pid_t cgroup_job_clone(struct job_cgroup *cg, unsigned long ns_flags,
                       bool *born)
{
	pid_t pid = clone_into(cg, ns_flags);

	*born = pid >= 0;
	if (pid >= 0)
		return pid;
	/* v1, or a kernel or sandbox without clone3: an ordinary clone, the
	 * caller moves the child (the move's EPERM or the clone's own error
	 * says what is wrong where both fail) */
	if (cg->ops->version == 2 && errno != ENOSYS && errno != E2BIG &&
	    errno != EINVAL) /* not an old kernel's answer */
		log_warn("cgroup %s: clone3 into it: %s; moving pid 1 instead",
		         cg->path, strerror(errno));
	return (pid_t)syscall(SYS_clone, ns_flags | SIGCHLD, NULL, NULL, NULL,
	                      NULL);
}

/* Call fn on every pid in cgroup.procs; returns the count. */
static int for_each_pid(struct job_cgroup *cg, int sig)
{
	char *dir = cgroup_job_dir(cg, cg->ops->procs_controller);
	char *path = xasprintf("%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	int count = 0, pid;

	free(path);
	free(dir);
	if (f == NULL)
		return -1;
	while (fscanf(f, "%d", &pid) == 1) {
		count++;
		if (sig > 0)
			kill(pid, sig);
	}
	fclose(f);
	return count;
}

int cgroup_job_signal(struct job_cgroup *cg, int sig, struct err *e)
{
	if (for_each_pid(cg, sig) < 0)
		return err_sys(e, TERR_IO, "cgroup %s: list processes",
		               cg->path);
	return 0;
}

int cgroup_job_count(struct job_cgroup *cg)
{
	return for_each_pid(cg, 0);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int cgroup_job_kill(struct job_cgroup *cg, int timeout_ms, struct err *e)
{
	int64_t deadline = now_mono_ms() + timeout_ms;
	int n;

	/* v2: cgroup.kill reaches every process, even ones forking, in one
	 * write; then only wait for the group to empty. */
	bool killed = cg->ops->kill != NULL && cgroup_job_count(cg) > 0 &&
	              cg->ops->kill(cg, NULL) == 0;

	while ((n = cgroup_job_count(cg)) > 0) {
		if (killed && now_mono_ms() <= deadline) {
			sleep_ms(5);
			continue;
		}
		if (now_mono_ms() > deadline)
			return err_set(
			    e, TERR_TIMEOUT,
			    "cgroup %s: %d processes survive SIGKILL", cg->path,
			    n);
		/* Frozen, nothing can fork between listing and killing. */
		cg->ops->freeze(cg, true, NULL);
		for_each_pid(cg, SIGKILL);
		cg->ops->freeze(cg, false, NULL);
		sleep_ms(5);
	}
	return n < 0 ? err_sys(e, TERR_IO, "cgroup %s: list", cg->path) : 0;
}

void cgroup_job_usage(struct job_cgroup *cg, struct cgroup_usage *u)
{
	u->peak_memory_bytes = -1;
	u->cpu_seconds = -1;
	u->oom = false;
	cg->ops->usage(cg, u);
}

const char *cgroup_job_path(const struct job_cgroup *cg)
{
	return cg->path;
}

int cgroup_job_version(const struct job_cgroup *cg)
{
	return cg->ops->version;
}

void cgroup_job_destroy(struct job_cgroup *cg)
{
	if (cg == NULL)
		return;
	if (cg->lib != NULL) {
		if (cgroup_job_count(cg) > 0)
			cgroup_job_kill(cg, 5000, NULL);
		if (!rmdir_v1(cg))
			cgroup_delete_cgroup_ext(
			    cg->lib, CGFLAG_DELETE_IGNORE_MIGRATION);
		cgroup_free(&cg->lib);
	}
	free(cg);
}
