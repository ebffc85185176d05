/* disk.c: the attempt's disk budget, measured.
 *
 * The budget (resources.disk, at most the agent's attempt_max_disk) covers
 * what the job can write on the node: its work, outputs and checkpoints
 * directories, its private /tmp and /dev/shm (sandbox: tmpfs whose size=
 * is twice the budget, sandbox.c), and files it deleted but holds open on
 * the state dir's filesystem.  Every file, directory and link counts at
 * least 4 KiB (an empty file holds an inode: millions of them fill the
 * state dir's inodes), and a walk stops as soon as it is over the budget,
 * so it reads at most budget/4 KiB entries.  The supervisor loop measures every
 * disk_check_ms (more rarely when a walk is slow) and stops the job with
 * `disk_limit` once it is at the budget; docs/state-dir.md states the
 * overshoot.  Measuring was chosen over project quotas (they need a
 * filesystem mounted with prjquota) and a loop filesystem per attempt
 * (mkfs, a loop device and a mount per attempt, and outputs uploaded
 * after the job ended), so it works on any state dir.
 *
 * The walk runs as root over directories the job controls: every step is
 * an *at() call on an open directory with O_NOFOLLOW, so a symlink or a
 * directory swapped for one is counted as a link, never followed. */
#include "common/err.h"
#include "common/util.h"
#include "runner/source/source.h"
#include "runner/runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Deeper trees cannot be measured (an fd per level): they count as over
 * the budget. */
#define DISK_MAX_DEPTH 256

int runner_disk_budget(struct runner *r, struct err *e)
{
	int64_t max = r->set.attempt_max_disk;
	int64_t want = r->spec->resources.disk;

	if (r->set.disk_check_ms < 100)
		r->set.disk_check_ms = 100;
	if (want > 0 && max > 0 && want > max)
		return err_set(e, TERR_INVAL,
		               "resources.disk: %lld bytes is more than this "
		               "agent allows (attempt_max_disk, %lld bytes)",
		               (long long)want, (long long)max);
	r->disk_limit = want > 0 ? want : max;
	return 0;
}

/* Each file, directory or link counts at least this much: an empty file
 * takes no block but an inode and a directory entry, and millions of them
 * exhaust the state dir's inodes as surely as bytes fill it. */
#define DISK_ENTRY_MIN 4096

struct walk {
	int64_t bytes;
	int64_t stop_at; /* stop walking once over it (the budget), or 0 */
	bool too_deep;
};

static void walk_at(int dfd, int depth, struct walk *w)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	struct stat st;

	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int fd;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (w->stop_at > 0 && w->bytes > w->stop_at)
			break; /* over: the rest cannot bring it under */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* removed meanwhile */
		w->bytes += (int64_t)st.st_blocks * 512 > DISK_ENTRY_MIN
		                ? (int64_t)st.st_blocks * 512
		                : DISK_ENTRY_MIN;
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth >= DISK_MAX_DEPTH) {
			w->too_deep = true;
			continue;
		}
		fd = openat(dirfd(d), de->d_name,
		            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			walk_at(fd, depth + 1, w); /* closes fd */
	}
	closedir(d);
}

static void walk_dir(const char *path, struct walk *w)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0)
		walk_at(fd, 0, w);
}

/* Bytes used on the tmpfs at the job's path p (sandbox: its own mounts,
 * seen through /proc/<pid>/root). */
static int64_t tmpfs_used(pid_t pid, const char *p)
{
	char path[64];
	struct statvfs sv;

	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, p);
	if (statvfs(path, &sv) < 0)
		return 0;
	return (int64_t)(sv.f_blocks - sv.f_bfree) * (int64_t)sv.f_frsize;
}

/* Deleted files seen so far in one measure: each is counted once, however
 * many descriptors share it (a shell and its children do). */
#define SEEN_MAX 4096
struct seen {
	ino_t ino[SEEN_MAX];
	size_t n;
};

static bool seen_add(struct seen *s, ino_t ino)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ino[i] == ino)
			return false;
	if (s->n < SEEN_MAX)
		s->ino[s->n++] = ino;
	return true;
}

/* Files the processes of pid's fd table hold open after unlinking them,
 * on device dev (the state dir's filesystem). */
static int64_t pid_deleted_open(const char *pid, dev_t dev, struct seen *s)
{
	char path[64];
	struct dirent *de;
	struct stat st;
	int64_t sum = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    S_ISREG(st.st_mode) && st.st_nlink == 0 &&
		    st.st_dev == dev && seen_add(s, st.st_ino))
			sum += (int64_t)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

/* The job's processes (its cgroup) and their deleted open files. */
static int64_t deleted_open(struct runner *r, dev_t dev)
{
	char path[512], line[32];
	int64_t sum = 0;
	struct seen *seen;
	FILE *f;

	if (r->state.cgroup[0] == '\0')
		return 0;
	/* cgroup v2, else v1's pids hierarchy */
	snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/cgroup.procs",
	         r->state.cgroup);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(path, sizeof(path),
		         "/sys/fs/cgroup/pids/%s/cgroup.procs",
		         r->state.cgroup);
		f = fopen(path, "re");
	}
	if (f == NULL)
		return 0;
	seen = xcalloc(1, sizeof(*seen));
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0')
			sum += pid_deleted_open(line, dev, seen);
	}
	free(seen);
	fclose(f);
	return sum;
}

int64_t runner_disk_usage(struct runner *r)
{
	struct walk w = {.stop_at = r->disk_limit};
	struct stat st;

	if (r->stage_dir != NULL) { /* slurm: the job writes only there */
		walk_dir(r->stage_dir, &w);
	} else {
		walk_dir(r->work_dir, &w);
		walk_dir(r->outputs_dir, &w);
		walk_dir(r->checkpoints_dir, &w);
	}
	if (w.too_deep)
		return INT64_MAX;
	if (r->launcher == LAUNCHER_SANDBOX && r->state.job_pid > 0) {
		w.bytes += tmpfs_used(r->state.job_pid, "/tmp");
		w.bytes += tmpfs_used(r->state.job_pid, "/dev/shm");
	}
	if (stat(r->dir, &st) == 0)
		w.bytes += deleted_open(r, st.st_dev);
	return w.bytes;
}
