/* Unit tests of runner/cgroup*.c (root only): the v1 group of this machine
 * with its limit files, attach, kill of a detached tree and removal; and
 * the v2 operations (procs, freeze, kill, cpu.stat) on the unified
 * hierarchy that a hybrid host mounts at /sys/fs/cgroup/unified. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "runner/sandbox/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIFIED "/sys/fs/cgroup/unified"

/* A child that starts a detached (setsid) grandchild, then sleeps;
 * both are in the group once the child is. */
static pid_t spawn_tree(int ready_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		char go;
		if (read(ready_fd, &go, 1) != 1)
			_exit(1);
		if (fork() == 0) {
			setsid();
			for (;;)
				pause();
		}
		for (;;)
			pause();
	}
	return pid;
}

static int wait_count(struct job_cgroup *cg, int want)
{
	for (int i = 0; i < 200; i++) {
		int n = cgroup_job_count(cg);
		if (n == want)
			return n;
		usleep(10000);
	}
	return cgroup_job_count(cg);
}

static char *read_file(struct job_cgroup *cg, const char *ctl, const char *file)
{
	static char buf[256];

	if (cgroup_job_read(cg, ctl, file, buf, sizeof(buf)) < 0)
		return NULL;
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static void test_v1_group(void **state)
{
	struct statfs sf;
	static const int gpus[] = {3};
	struct cgroup_limits lim = {.memory = 64 << 20,
	                            .cpus = 0.25,
	                            .pids = 32,
	                            .gpus = gpus,
	                            .ngpus = 1};
	struct job_cgroup *cg = NULL;
	struct err e = {0};
	char name[64], *dir;
	int p[2];
	pid_t child;

	if (statfs("/sys/fs/cgroup", &sf) == 0 &&
	    sf.f_type == CGROUP2_SUPER_MAGIC)
		skip(); /* a v2 host: covered by test_v2_ops */
	snprintf(name, sizeof(name), "unit_%d", (int)getpid());
	assert_int_equal(cgroup_job_create("tether-unit", name, &lim, &cg, &e),
	                 0);
	assert_int_equal(cgroup_job_version(cg), 1);
	assert_string_equal(read_file(cg, "memory", "memory.limit_in_bytes"),
	                    "67108864");
	assert_string_equal(read_file(cg, "cpu", "cpu.cfs_quota_us"), "25000");
	assert_string_equal(read_file(cg, "pids", "pids.max"), "32");
	/* Only the basic devices and the assigned GPU (minor 3). */
	char devices[4096];
	assert_int_equal(cgroup_job_read(cg, "devices", "devices.list", devices,
	                                 sizeof(devices)),
	                 0);
	assert_non_null(strstr(devices, "c 1:3 rwm"));
	assert_non_null(strstr(devices, "c 195:3 rwm"));
	assert_null(strstr(devices, "c 195:0 rwm"));
	assert_null(strstr(devices, "a *:* rwm"));

	assert_int_equal(pipe(p), 0);
	child = spawn_tree(p[0]);
	assert_int_equal(cgroup_job_attach(cg, child, &e), 0);
	assert_int_equal(write(p[1], "g", 1), 1);
	assert_int_equal(wait_count(cg, 2), 2);
	assert_int_equal(cgroup_job_kill(cg, 5000, &e), 0);
	assert_int_equal(cgroup_job_count(cg), 0);
	waitpid(child, NULL, 0);

	struct cgroup_usage u;
	cgroup_job_usage(cg, &u);
	assert_true(u.peak_memory_bytes > 0);
	assert_true(u.cpu_seconds >= 0);
	assert_false(u.oom);
	dir = cgroup_job_dir(cg, "pids");
	cgroup_job_destroy(cg);
	assert_int_not_equal(access(dir, F_OK), 0);
	free(dir);
	/* The parent stays (other groups may use it); drop ours if empty. */
	const char *ctls[] = {"memory",  "cpu",     "cpuacct", "pids",
	                      "devices", "freezer", NULL};
	for (size_t i = 0; ctls[i] != NULL; i++) {
		char parent[128];
		snprintf(parent, sizeof(parent),
		         "/sys/fs/cgroup/%s/tether-unit", ctls[i]);
		rmdir(parent);
	}
	close(p[0]);
	close(p[1]);
}

static void test_v2_ops(void **state)
{
	struct job_cgroup *cg = xcalloc(1, sizeof(*cg));
	struct cgroup_usage u;
	struct statfs sf;
	struct err e = {0};
	char *dir, *events;
	int p[2];
	pid_t child;

	if (statfs(UNIFIED, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
		free(cg);
		skip();
	}
	cg->ops = &cgroup_v2_ops;
	snprintf(cg->v2_root, sizeof(cg->v2_root), "%s", UNIFIED);
	snprintf(cg->path, sizeof(cg->path), "tether-unit-%d", (int)getpid());
	dir = cgroup_job_dir(cg, NULL);
	assert_int_equal(mkdir(dir, 0755), 0);

	assert_int_equal(pipe(p), 0);
	child = spawn_tree(p[0]);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)child);
	assert_int_equal(cgroup_job_write(cg, NULL, "cgroup.procs", pid, &e),
	                 0);
	assert_int_equal(write(p[1], "g", 1), 1);
	assert_int_equal(wait_count(cg, 2), 2);

	assert_int_equal(cgroup_v2_ops.freeze(cg, true, &e), 0);
	events = read_file(cg, NULL, "cgroup.freeze");
	assert_string_equal(events, "1");
	assert_int_equal(cgroup_v2_ops.freeze(cg, false, &e), 0);

	assert_int_equal(cgroup_job_kill(cg, 5000, &e), 0);
	assert_int_equal(cgroup_job_count(cg), 0);
	waitpid(child, NULL, 0);
	cgroup_job_usage(cg, &u);
	assert_true(u.cpu_seconds >= 0); /* cpu.stat is a core file on v2 */
	assert_false(u.oom);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
	free(cg);
	close(p[0]);
	close(p[1]);
}

/* The v2 device program: in a group with it attached, /dev/null (allowed)
 * opens and /dev/kmsg (1:11, not on the list) is refused with EPERM; the
 * same process outside the group opens both. */
static int try_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static void test_v2_devices(void **state)
{
	struct job_cgroup *cg = xcalloc(1, sizeof(*cg));
	struct cgroup_limits lim = {0};
	struct statfs sf;
	struct err e = {0};
	char *dir, pid[32], go;
	int p[2], st;
	pid_t child;

	if (statfs(UNIFIED, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC ||
	    access("/dev/kmsg", R_OK) != 0) {
		free(cg);
		skip();
	}
	assert_int_equal(try_open("/dev/kmsg"), 0);
	cg->ops = &cgroup_v2_ops;
	snprintf(cg->v2_root, sizeof(cg->v2_root), "%s", UNIFIED);
	snprintf(cg->path, sizeof(cg->path), "tether-unit-dev-%d",
	         (int)getpid());
	dir = cgroup_job_dir(cg, NULL);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(cgroup_v2_devices(cg, &lim, &e), 0);
	assert_int_equal(pipe(p), 0);
	child = fork();
	if (child == 0) {
		int r = 100;
		if (read(p[0], &go, 1) == 1)
			r = (try_open("/dev/null") == 0 ? 1 : 0) |
			    (try_open("/dev/kmsg") == EPERM ? 2 : 0);
		free(dir); /* the child's copies (valgrind's leak check) */
		free(cg);
		_exit(r);
	}
	snprintf(pid, sizeof(pid), "%d", (int)child);
	assert_int_equal(cgroup_job_write(cg, NULL, "cgroup.procs", pid, &e),
	                 0);
	assert_int_equal(write(p[1], "g", 1), 1);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
	free(cg);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_group),
	    cmocka_unit_test(test_v2_ops),
	    cmocka_unit_test(test_v2_devices),
	};

	if (geteuid() != 0) {
		printf("skipped: cgroups need root\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
