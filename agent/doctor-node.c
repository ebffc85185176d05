/* doctor-node.c: doctor checks of the machine itself: cgroups, namespaces
 * and the job user, the state directory, its disk, the clock. */
#include "agent/doctor.h"
#include "agent/harden.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/statfs.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CGROUP_ROOT         "/sys/fs/cgroup"
#define CGROUP_SUPER_MAGIC  0x27e0eb
#define CGROUP2_SUPER_MAGIC 0x63677270
#define GIB                 (1024.0 * 1024 * 1024)

static bool fs_is(const char *path, long magic)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && (long)sf.f_type == magic;
}

/* v1: append the missing or read-only controllers of list to miss. */
static void cgroup_v1_missing(const char *const *list, char *miss, size_t len)
{
	char path[256];

	for (int i = 0; list[i]; i++) {
		snprintf(path, sizeof(path), CGROUP_ROOT "/%s", list[i]);
		if (fs_is(path, CGROUP_SUPER_MAGIC) && access(path, W_OK) == 0)
			continue;
		snprintf(miss + strlen(miss), len - strlen(miss), " %s",
		         list[i]);
	}
}

static void check_cgroup_v1(struct doctor *d, bool hybrid)
{
	static const char *const need[] = {"memory", "cpu", "pids", NULL};
	static const char *const want[] = {"devices", "cpuacct", "freezer",
	                                   NULL};
	char miss[256] = "", soft[256] = "";

	cgroup_v1_missing(need, miss, sizeof(miss));
	cgroup_v1_missing(want, soft, sizeof(soft));
	if (miss[0]) {
		doctor_add(d, "cgroup", DOC_FAIL,
		           "mount the controllers (cgroup-tools / systemd "
		           "does) and run the agent as root",
		           "v1%s: controller(s)%s not mounted writable "
		           "under " CGROUP_ROOT,
		           hybrid ? " (hybrid)" : "", miss);
	} else if (soft[0]) {
		doctor_add(d, "cgroup", DOC_WARN,
		           "mount them for device limits and clean kills",
		           "v1%s: memory cpu pids ok; missing%s",
		           hybrid ? " (hybrid)" : "", soft);
	} else {
		doctor_add(d, "cgroup", DOC_OK, NULL,
		           "v1%s: memory cpu pids devices cpuacct freezer",
		           hybrid ? " (hybrid)" : "");
	}
}

/* v2: the controllers must be available and enabled for children. */
static void check_cgroup_v2(struct doctor *d)
{
	static const char *const need[] = {"memory", "cpu", "pids", NULL};
	char avail[512] = "", sub[512] = "", miss[128] = "", off[128] = "";
	FILE *f;

	if ((f = fopen(CGROUP_ROOT "/cgroup.controllers", "r"))) {
		if (fgets(avail, sizeof(avail), f) == NULL)
			avail[0] = 0;
		fclose(f);
	}
	if ((f = fopen(CGROUP_ROOT "/cgroup.subtree_control", "r"))) {
		if (fgets(sub, sizeof(sub), f) == NULL)
			sub[0] = 0;
		fclose(f);
	}
	for (int i = 0; need[i]; i++) {
		if (strstr(avail, need[i]) == NULL)
			snprintf(miss + strlen(miss),
			         sizeof(miss) - strlen(miss), " %s", need[i]);
		else if (strstr(sub, need[i]) == NULL)
			snprintf(off + strlen(off), sizeof(off) - strlen(off),
			         " +%s", need[i]);
	}
	if (miss[0])
		doctor_add(d, "cgroup", DOC_FAIL,
		           "enable them on the kernel command line "
		           "(e.g. cgroup_enable=memory)",
		           "v2: controller(s)%s not available", miss);
	else if (off[0])
		doctor_add(d, "cgroup", DOC_WARN,
		           "echo '+memory +cpu +pids' > " CGROUP_ROOT
		           "/cgroup.subtree_control (systemd: Delegate=yes)",
		           "v2: controller(s)%s not enabled for children", off);
	else if (access(CGROUP_ROOT, W_OK) != 0)
		doctor_add(d, "cgroup", DOC_FAIL, "run the agent as root",
		           "v2: " CGROUP_ROOT " is not writable");
	else
		doctor_add(d, "cgroup", DOC_OK, NULL, "v2: memory cpu pids");
}

/* Does a cgroup hierarchy carry favordynmods (one is enough: the kernel's
 * lock that a move into a cgroup takes is shared by all)? */
static bool cgroup_favordynmods(void)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/mounts", "r");

	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
		char type[16], opts[512];

		/* device mount-point type options dump pass */
		if (sscanf(line, "%*s %*s %15s %511s", type, opts) == 2 &&
		    (strcmp(type, "cgroup") == 0 ||
		     strcmp(type, "cgroup2") == 0))
			found = strstr(opts, "favordynmods") != NULL;
	}
	if (f != NULL)
		fclose(f);
	return found;
}

/* How a job's pid 1 gets into its cgroup, and what it costs the start. */
static void check_cgroup_move(struct doctor *d, bool v2)
{
	if (v2)
		doctor_add(d, "cgroup-move", DOC_OK, NULL,
		           "v2: a job's pid 1 is born in its cgroup (clone3)");
	else if (cgroup_favordynmods())
		doctor_add(d, "cgroup-move", DOC_OK, NULL,
		           "v1: favordynmods: moving a job's pid 1 into its "
		           "cgroups does not wait");
	else
		doctor_add(
		    d, "cgroup-move", DOC_INFO, NULL,
		    "v1: moving a job's pid 1 into its cgroups waits for "
		    "an RCU grace period (4-20 ms of each start on an "
		    "idle node); the kernel's favordynmods (boot with "
		    "cgroup_favordynmods=true, or remount a hierarchy "
		    "with it) removes the wait, at a small cost to every "
		    "fork and exit (docs/performance.md, F10)");
}

void doctor_check_cgroup(struct doctor *d)
{
	if (fs_is(CGROUP_ROOT, CGROUP2_SUPER_MAGIC)) {
		check_cgroup_v2(d);
		check_cgroup_move(d, true);
	} else if (access(CGROUP_ROOT "/memory", F_OK) == 0) {
		check_cgroup_v1(
		    d, fs_is(CGROUP_ROOT "/unified", CGROUP2_SUPER_MAGIC));
		check_cgroup_move(d, false);
	} else
		doctor_add(d, "cgroup", DOC_FAIL,
		           "mount cgroupfs on " CGROUP_ROOT
		           " (any systemd boot does)",
		           "no cgroup hierarchy under " CGROUP_ROOT);
}

/* Can this process create the namespaces of the sandbox? */
static int try_unshare(void)
{
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
	            CLONE_NEWNET;
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(unshare(flags) == 0 ? 0 : (errno & 0x7f));
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
}

void doctor_check_namespaces(struct doctor *d)
{
	const char *user = d->conf.job_user ? d->conf.job_user : "tether-job";
	struct passwd *pw;
	int r;

	if (geteuid() != 0) {
		doctor_add(
		    d, "namespaces", DOC_FAIL,
		    "run the agent (and doctor) as root, as systemd does",
		    "not root: the sandbox needs root for namespaces, "
		    "cgroups and switching to the job user");
	} else if ((r = try_unshare()) != 0) {
		doctor_add(d, "namespaces", DOC_FAIL,
		           "allow unshare(2) for root (container: run it "
		           "privileged or with CAP_SYS_ADMIN, seccomp "
		           "unconfined)",
		           "cannot create mount/pid/ipc/uts/net namespaces: %s",
		           strerror(r));
	} else {
		doctor_add(
		    d, "namespaces", DOC_OK, NULL,
		    "root; mount, pid, ipc, uts and net namespaces work");
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		doctor_add(d, "job-user", DOC_FAIL,
		           "useradd --system --no-create-home --shell "
		           "/usr/sbin/nologin tether-job (install.sh does)",
		           "user '%s' (job_user) does not exist", user);
	else if (pw->pw_uid == 0)
		doctor_add(d, "job-user", DOC_FAIL,
		           "set job_user to an unprivileged user",
		           "job_user '%s' is root", user);
	else
		doctor_add(d, "job-user", DOC_OK, NULL, "%s (uid %u)", user,
		           (unsigned)pw->pw_uid);
}

/* Create and remove a file: the one proof that the directory is writable. */
static int probe_write(const char *dir)
{
	char *path = xasprintf("%s/.doctor-XXXXXX", dir);
	int fd = mkstemp(path), r = 0;

	if (fd < 0) {
		r = errno;
	} else {
		if (write(fd, "x", 1) != 1 || fsync(fd) < 0)
			r = errno ? errno : EIO;
		close(fd);
		unlink(path);
	}
	free(path);
	return r;
}

void doctor_check_state_dir(struct doctor *d)
{
	const char *dir = d->conf.state_dir;
	struct stat st;
	int r;

	if (stat(dir, &st) < 0) {
		char *fix = xasprintf("install -d -m 0700 %s (install.sh "
		                      "does), or set state_dir",
		                      dir);

		doctor_add(d, "state-dir", DOC_FAIL, fix, "%s: %s", dir,
		           strerror(errno));
		free(fix);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		doctor_add(d, "state-dir", DOC_FAIL,
		           "set state_dir to a directory",
		           "%s is not a directory", dir);
		return;
	}
	if ((r = probe_write(dir)) != 0) {
		doctor_add(d, "state-dir", DOC_FAIL,
		           "make it writable by root (read-only mount? full "
		           "disk? immutable?)",
		           "%s is not writable: %s", dir, strerror(r));
		return;
	}
	if ((st.st_mode & 07777) != 0700 || st.st_uid != geteuid())
		doctor_add(d, "state-dir", DOC_WARN,
		           "chown root:root STATE_DIR && chmod 0700 STATE_DIR",
		           "%s is mode %04o owner uid %u; it holds the "
		           "credential and must be 0700 and root's",
		           dir, (unsigned)(st.st_mode & 07777),
		           (unsigned)st.st_uid);
	else
		doctor_add(d, "state-dir", DOC_OK, NULL, "%s (0700, writable)",
		           dir);
}

void doctor_check_disk(struct doctor *d)
{
	struct statvfs sv;
	double free_b, total_b;
	char why[512];

	if (statvfs(d->conf.state_dir, &sv) < 0)
		return; /* the state-dir check said why */
	free_b = (double)sv.f_bavail * (double)sv.f_frsize;
	total_b = (double)sv.f_blocks * (double)sv.f_frsize;
	if (harden_disk_check(d->conf.state_dir, harden_disk_min_free(&d->conf),
	                      why, sizeof(why)))
		doctor_add(d, "disk", DOC_FAIL,
		           "free space (old envs: lower env_cache_budget; "
		           "attempts: lower attempt_disk_budget)",
		           "%s", why);
	else if (free_b < 1 * GIB)
		doctor_add(
		    d, "disk", DOC_FAIL,
		    "free space (old envs: lower env_cache_budget; "
		    "attempts: lower attempt_retention)",
		    "%.2f GiB free in %s: jobs cannot build environments "
		    "or write logs",
		    free_b / GIB, d->conf.state_dir);
	else if (free_b < 10 * GIB || free_b < total_b * 0.05)
		doctor_add(d, "disk", DOC_WARN,
		           "free space or move state_dir to a larger disk",
		           "%.1f GiB free of %.1f GiB in %s", free_b / GIB,
		           total_b / GIB, d->conf.state_dir);
	else
		doctor_add(d, "disk", DOC_OK, NULL, "%.1f GiB free of %.1f GiB",
		           free_b / GIB, total_b / GIB);
}

/* 2025-01-01T00:00:00Z: a clock before this has never been set. */
#define CLOCK_FLOOR 1735689600LL

void doctor_check_clock(struct doctor *d)
{
	long long now = (long long)time(NULL);
	struct timex tx = {0};
	int state = adjtimex(&tx);
	bool synced = state != TIME_ERROR && !(tx.status & STA_UNSYNC);
	long long skew = d->ws_date ? now - d->ws_date : 0;

	if (now < CLOCK_FLOOR)
		doctor_add(d, "clock", DOC_FAIL,
		           "set the time and run NTP (systemd-timesyncd or "
		           "chrony); TLS certificates look not yet valid",
		           "the wall clock reads %lld, before 2025", now);
	else if (skew > 300 || skew < -300)
		doctor_add(d, "clock", DOC_WARN,
		           "run NTP (systemd-timesyncd or chrony) on both "
		           "machines",
		           "%lld s off the workspace's clock (leases are "
		           "relative and still work; times shown are off)",
		           skew);
	else
		doctor_add(d, "clock", synced ? DOC_OK : DOC_INFO,
		           synced ? NULL
		                  : "run NTP (systemd-timesyncd or chrony)",
		           "%s%s",
		           synced ? "NTP-synchronised" : "not NTP-synchronised",
		           d->ws_date ? ", within 5 min of the workspace" : "");
}
