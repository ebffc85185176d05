/* doctor-tools.c: doctor checks of the programs that environments and
 * launchers use: python3 + venv, git, conda, Slurm, the NVIDIA driver. */
#include "agent/doctor.h"
#include "agent/gpu-nvml.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

bool doctor_which(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	bool found = false;

	if (strchr(name, '/')) {
		snprintf(buf, len, "%s", name);
		return access(name, X_OK) == 0;
	}
	copy = xstrdup(path && *path ? path
	                             : "/usr/local/sbin:/usr/local/bin:"
	                               "/usr/sbin:/usr/bin:/sbin:/bin");
	for (dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		struct stat st;

		snprintf(buf, len, "%s/%s", dir, name);
		found = stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
		        access(buf, X_OK) == 0;
	}
	free(copy);
	return found;
}

/* Read the child's output until EOF or the deadline; false on timeout. */
static bool read_until(int fd, int timeout_s, char *out, size_t len)
{
	int64_t deadline = now_mono_ms() + (int64_t)timeout_s * 1000;
	size_t used = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_mono_ms();
		char junk[512];
		ssize_t n;

		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (used + 1 < len)
			n = read(fd, out + used, len - 1 - used);
		else
			n = read(fd, junk, sizeof(junk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		if (used + 1 < len)
			used += (size_t)n;
		out[used] = 0;
	}
}

int doctor_run(const char *const argv[], int timeout_s, char *out, size_t len)
{
	int p[2], status;
	bool done;
	pid_t pid;

	if (len)
		out[0] = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		setpgid(0, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	done = read_until(p[0], timeout_s, out, len);
	close(p[0]);
	if (!done)
		kill(-pid, SIGKILL);
	if (waitpid(pid, &status, 0) < 0 || !done)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The first line of s, trimmed, in place. */
static char *first_line(char *s)
{
	s[strcspn(s, "\r\n")] = 0;
	return s;
}

void doctor_check_python(struct doctor *d)
{
	const char *py = d->conf.default_python ? d->conf.default_python
	                                        : "/usr/bin/python3";
	const char *argv[] = {py, "-c",
	                      "import sys, venv, ensurepip; "
	                      "print(sys.version.split()[0])",
	                      NULL};
	char out[512];
	int r;

	if (access(py, X_OK) != 0) {
		doctor_add(d, "python", DOC_WARN,
		           "apt-get install python3 python3-venv, or set "
		           "default_python",
		           "%s not found: venv environments will fail", py);
		return;
	}
	r = doctor_run(argv, 20, out, sizeof(out));
	if (r != 0)
		doctor_add(d, "python", DOC_WARN,
		           "apt-get install python3-venv (Debian splits "
		           "ensurepip out)",
		           "%s has no venv/ensurepip module: venv environments "
		           "will fail (%s)",
		           py, first_line(out));
	else
		doctor_add(d, "python", DOC_OK, NULL, "%s %s with venv", py,
		           first_line(out));
}

void doctor_check_git(struct doctor *d)
{
	char path[512], out[256];
	const char *argv[] = {path, "--version", NULL};

	if (!doctor_which("git", path, sizeof(path))) {
		doctor_add(d, "git", DOC_INFO,
		           "apt-get install git (jobs that call git need it)",
		           "git not on PATH; sources are fetched with libgit2 "
		           "anyway");
		return;
	}
	if (doctor_run(argv, 10, out, sizeof(out)) != 0)
		doctor_add(d, "git", DOC_WARN, "reinstall git",
		           "%s --version failed: %s", path, first_line(out));
	else
		doctor_add(d, "git", DOC_OK, NULL, "%s", first_line(out));
}

void doctor_check_conda(struct doctor *d)
{
	static const char *const tools[] = {"micromamba", "mamba", "conda",
	                                    NULL};
	char path[512];

	if (d->conf.conda_tool) {
		if (doctor_which(d->conf.conda_tool, path, sizeof(path)))
			doctor_add(d, "conda", DOC_OK, NULL, "%s (conda_tool)",
			           path);
		else
			doctor_add(
			    d, "conda", DOC_WARN,
			    "install it or correct conda_tool",
			    "conda_tool '%s' not found: conda environments "
			    "will fail",
			    d->conf.conda_tool);
		return;
	}
	for (int i = 0; tools[i]; i++) {
		if (doctor_which(tools[i], path, sizeof(path))) {
			doctor_add(d, "conda", DOC_OK, NULL, "%s", path);
			return;
		}
	}
	doctor_add(d, "conda", DOC_WARN,
	           "install micromamba (a single binary) on PATH, or set "
	           "conda_tool",
	           "no micromamba, mamba or conda: conda environments will "
	           "fail");
}

static const char *slurm_conf(void)
{
	const char *env = getenv("SLURM_CONF");

	if (env && access(env, R_OK) == 0)
		return env;
	if (access("/etc/slurm/slurm.conf", R_OK) == 0)
		return "/etc/slurm/slurm.conf";
	return NULL;
}

void doctor_check_slurm(struct doctor *d)
{
	bool wanted = d->conf.slurm_partition ||
	              (d->conf.default_launcher &&
	               strcmp(d->conf.default_launcher, "slurm") == 0);
	enum doctor_status bad = wanted ? DOC_FAIL : DOC_WARN;
	static const char *const cmds[] = {"sbatch", "squeue", "scancel",
	                                   "sinfo", NULL};
	char path[512], sinfo[512], out[1024];
	const char *argv[] = {sinfo, "-h", "-o", "%P", NULL};
	const char *conf = slurm_conf();

	for (int i = 0; cmds[i]; i++) {
		if (doctor_which(cmds[i], path, sizeof(path)))
			continue;
		doctor_add(d, "slurm", wanted ? DOC_FAIL : DOC_INFO,
		           wanted ? "apt-get install slurm-client" : NULL,
		           "%s not on PATH: the slurm launcher is unavailable",
		           cmds[i]);
		return;
	}
	if (conf == NULL) {
		doctor_add(d, "slurm", wanted ? DOC_FAIL : DOC_INFO,
		           wanted ? "write /etc/slurm/slurm.conf or set "
		                    "SLURM_CONF"
		                  : NULL,
		           "Slurm commands found but no slurm.conf: not a "
		           "cluster node, the slurm launcher is unavailable");
		return;
	}
	doctor_which("sinfo", sinfo, sizeof(sinfo));
	if (doctor_run(argv, 10, out, sizeof(out)) != 0) {
		doctor_add(d, "slurm", bad,
		           "start slurmctld and munge (systemctl start munge "
		           "slurmctld)",
		           "sinfo failed (%s): %s", conf, first_line(out));
		return;
	}
	for (char *p = out; (p = strchr(p, '\n'));)
		*p = ' ';
	doctor_add(d, "slurm", DOC_OK, NULL, "%s; partitions: %s", conf,
	           out[0] ? out : "(none)");
}

void doctor_check_gpus(struct doctor *d)
{
	struct nvml *nv;
	char drv[96] = "?";
	unsigned int n;
	int r;

	if ((r = gpu_nvml_open(&nv)) == TERR_NOTFOUND) {
		doctor_add(d, "gpu", DOC_INFO,
		           access("/proc/driver/nvidia/version", F_OK) == 0
		               ? "install the driver's NVML library "
		                 "(libnvidia-ml1 or the .run installer)"
		               : NULL,
		           "no NVIDIA driver (libnvidia-ml.so.1 not found): no "
		           "GPUs offered");
		return;
	}
	if (r < 0) {
		doctor_add(
		    d, "gpu", DOC_WARN,
		    "check nvidia-smi; reload the driver (modprobe "
		    "nvidia) or reboot after a driver upgrade",
		    "libnvidia-ml.so.1 found but NVML does not start: no "
		    "GPUs offered");
		return;
	}
	n = gpu_nvml_count(nv);
	gpu_nvml_driver(nv, drv, sizeof(drv));
	gpu_nvml_close(nv);
	doctor_add(d, "gpu", n ? DOC_OK : DOC_WARN,
	           n ? NULL
	             : "check nvidia-smi and the device nodes /dev/nvidia*",
	           "NVIDIA driver %s, %u GPU(s)%s", drv, n,
	           d->conf.gpus >= 0 ? " (gpus set in config)" : "");
}
