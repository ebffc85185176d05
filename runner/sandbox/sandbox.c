/* sandbox.c: the native `sandbox` launcher (see sandbox.h and
 * docs/sandbox.md).  The job runs in new mount, pid, ipc and uts
 * namespaces (and net for `network: none`) under a tiny reaper as pid 1,
 * inside its own cgroup. */
#include "runner/sandbox/sandbox.h"
#include "runner/allowlist.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/sandbox/cgroup.h"
#include "runner/launcher.h"
#include "runner/logpipe.h"
#include "common/attempt.h"
#include "runner/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SANDBOX_MAX_GPUS 64
#define READY_WAIT_MS    10000 /* setup that takes longer: go on */

struct sandbox {
	struct sandbox_cfg cfg;
	struct job_cgroup *cg;
	pid_t init_pid;
	int out_fd, done_fd;
	int gpus[SANDBOX_MAX_GPUS];
	size_t ngpus;
	/* A detached sandbox (sandbox-detach.c): pid 1's pidfd and the thread
	 * that follows sandbox.out; adopted: started by an earlier runner. */
	int pidfd;
	struct sandbox_tail *tail;
	bool adopted;
	bool root_shared; /* cfg.root is the state dir's, never removed */
};

static int check_mounts(struct runner *r, struct sandbox *sb, struct err *e)
{
	const struct jobspec *s = r->spec;
	char real[PATH_MAX];

	sb->cfg.mounts = xcalloc(s->nmounts + 1, sizeof(*sb->cfg.mounts));
	for (size_t i = 0; i < s->nmounts; i++) {
		struct sandbox_mount *m = &sb->cfg.mounts[i];
		const struct attempt_mount *allow;
		if (access(s->mounts[i].source, F_OK) < 0)
			return err_sys(e, TERR_NOTFOUND, "mount %s",
			               s->mounts[i].source);
		if ((allow = allowlist_entry(r, s->mounts[i].source, real)) ==
		    NULL)
			return err_set(e, TERR_PERM,
			               "mount %s is not allowed on this node "
			               "(the admin lists data mounts in "
			               "allowed_mounts)",
			               s->mounts[i].source);
		m->source = xstrdup(real);
		m->target = s->mounts[i].target;
		m->readonly = allowlist_readonly(allow, s->mounts[i].readonly);
		sb->cfg.nmounts++;
	}
	return 0;
}

static int make_cgroup(struct runner *r, struct sandbox *sb, struct err *e)
{
	struct cgroup_limits lim = {
	    .memory = r->spec->resources.memory,
	    .cpus = r->spec->resources.cpus,
	    .pids = r->spec->resources.pids > 0 ? r->spec->resources.pids
	                                        : r->set.default_pids,
	    .gpus = sb->gpus,
	    .ngpus = sb->ngpus,
	};
	char name[128];
	int rc;

	snprintf(name, sizeof(name), "%s_%lld", r->job_id,
	         (long long)r->attempt);
	if ((rc = cgroup_job_create(r->set.cgroup_parent, name, &lim, &sb->cg,
	                            e)) < 0)
		return rc;
	snprintf(r->state.cgroup, sizeof(r->state.cgroup), "%s",
	         cgroup_job_path(sb->cg));
	return 0;
}

/* tmpfs's default size: half the physical memory. */
static int64_t half_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (int64_t)pages * size / 2 : INT64_MAX;
}

static void fill_cfg(struct runner *r, struct sandbox *sb)
{
	struct sandbox_cfg *c = &sb->cfg;

	/* The root's mount point: one directory of the state dir for every
	 * attempt (each mounts on it in its own mount namespace only), so an
	 * attempt makes and removes no directory for it. */
	sb->root_shared =
	    r->set.state_dir != NULL && r->set.state_dir[0] == '/';
	c->root = sb->root_shared
	              ? xasprintf("%s/.sandbox-root", r->set.state_dir)
	              : xasprintf("%s/.sandbox", r->dir);
	c->work = r->work_dir;
	c->outputs = r->outputs_dir;
	c->checkpoints = r->checkpoints_dir;
	/* /tmp counts into the disk budget (disk.c); twice the budget, so
	 * that the measure, not ENOSPC, ends a job that fills it, and never
	 * more than tmpfs's default (half the RAM) */
	c->tmp_size = r->disk_limit > 0 && r->disk_limit < INT64_MAX / 2 &&
	                      2 * r->disk_limit < half_ram()
	                  ? 2 * r->disk_limit
	                  : 0;
	c->state_dir = r->set.state_dir;
	c->env_prefix = r->env.prefix;
	c->cwd = r->spec->workdir
	             ? xasprintf("/tether/work/%s", r->spec->workdir)
	             : xstrdup("/tether/work");
	snprintf(c->hostname, sizeof(c->hostname), "tether-%s", r->job_id);
	c->net_none = r->spec->network == NET_NONE;
	c->uid = r->uid;
	c->gid = r->gid;
	c->argv = r->argv;
	c->envp = r->envp;
	c->procs = r->procs > 1 ? r->procs : 1;
	c->rank_base = r->rank_base;
	c->out_fd = c->status_fd = c->sync_fd = c->tb_fd = -1;
	if (r->spec->metrics.tensorboard != NULL)
		c->tb_dir = xasprintf("/tether/outputs/%s",
		                      r->spec->metrics.tensorboard);
}

static int sandbox_prepare(struct runner *r, struct err *e)
{
	struct sandbox *sb = xcalloc(1, sizeof(*sb));
	int rc;

	sb->out_fd = sb->done_fd = sb->pidfd = -1;
	r->launcher_data = sb;
	fill_cfg(r, sb);
	sb->ngpus = runner_gpus(r, sb->gpus, SANDBOX_MAX_GPUS);
	if (r->uid == 0)
		return err_set(e, TERR_PERM,
		               "job_user '%s' is root: jobs never run as root",
		               r->set.job_user);
	if ((rc = check_mounts(r, sb, e)) < 0)
		return rc;
	if (mkdir(sb->cfg.root, 0700) < 0 && errno != EEXIST)
		return err_sys(e, TERR_IO, "mkdir %s", sb->cfg.root);
	return make_cgroup(r, sb, e);
}

/* fork() into new namespaces, inside the job's cgroup where the kernel
 * lets the child be born there (*born). */
static pid_t clone_ns(struct job_cgroup *cg, bool net, bool *born)
{
	unsigned long flags =
	    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

	if (net)
		flags |= CLONE_NEWNET;
	return cgroup_job_clone(cg, flags, born);
}

/* Until the job exec'd (or setup failed): EOF on the ready pipe.  So a
 * stop signal sent after `started` reaches the job, not only pid 1. */
static void wait_ready(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	int64_t end = now_mono_ms() + READY_WAIT_MS, left;
	char c;

	while ((left = end - now_mono_ms()) > 0) {
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (p.revents != 0 && read(fd, &c, 1) <= 0)
			break;
	}
	close(fd);
}

/* A detached sandbox: follow sandbox.out instead of the pipes, and record
 * what a restarted runner needs to adopt it (state.json, saved by the
 * supervisor before `started`). */
static int detached_follow(struct runner *r, struct sandbox *sb, int *out_fd,
                           int *done_fd, struct err *e)
{
	struct stat st;

	close(sb->out_fd); /* the pipes pid 1 does not use */
	close(sb->done_fd);
	sb->out_fd = sb->done_fd = -1;
	r->state.job_start = proc_start_time(sb->init_pid);
	r->state.log_start = fstat(r->log_fd, &st) == 0 ? st.st_size : 0;
	sb->pidfd = sandbox_pidfd(sb->init_pid, r->state.job_start);
	if (sb->pidfd < 0)
		return err_sys(e, TERR_IO, "pidfd of the sandbox");
	sb->tail = sandbox_tail_start(r->dir, sb->pidfd, 0, &sb->out_fd,
	                              &sb->done_fd, e);
	if (sb->tail == NULL)
		return e->code;
	*out_fd = sb->out_fd;
	*done_fd = sb->done_fd;
	return 0;
}

static int sandbox_start(struct runner *r, int *out_fd, int *done_fd,
                         struct err *e)
{
	struct sandbox *sb = r->launcher_data;
	int outp[2], statp[2], syncp[2], readyp[2], tbp[2] = {-1, -1}, rc = 0;
	bool born = false;
	pid_t pid;

	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(statp, O_CLOEXEC) < 0 ||
	    pipe2(syncp, O_CLOEXEC) < 0 || pipe2(readyp, O_CLOEXEC) < 0 ||
	    (sb->cfg.tb_dir != NULL && pipe2(tbp, O_CLOEXEC) < 0))
		return err_sys(e, TERR_IO, "pipe");
	sb->cfg.tb_fd = tbp[1];
	sb->cfg.out_fd = outp[1];
	sb->cfg.status_fd = statp[1];
	if (sb->cfg.detached &&
	    (rc = sandbox_detached_open(r->dir, &sb->cfg.out_fd,
	                                &sb->cfg.status_fd, e)) < 0)
		return rc;
	sb->cfg.sync_fd = syncp[0];
	sb->cfg.ready_fd = readyp[1];
	if ((pid = clone_ns(sb->cg, sb->cfg.net_none, &born)) < 0) {
		rc = err_sys(e, TERR_PERM, "clone into new namespaces");
		for (int i = 0; i < 2; i++) {
			close(outp[i]);
			close(statp[i]);
			close(syncp[i]);
			close(readyp[i]);
			if (tbp[i] >= 0)
				close(tbp[i]);
		}
		return rc;
	}
	if (pid == 0) {
		if (tbp[0] >= 0)
			close(tbp[0]);
		close(outp[0]);
		close(statp[0]);
		close(syncp[1]);
		close(readyp[0]);
		sandbox_init_main(&sb->cfg);
	}
	close(outp[1]);
	close(statp[1]);
	close(syncp[0]);
	close(readyp[1]);
	if (tbp[1] >= 0)
		close(tbp[1]);
	r->metrics_fd = tbp[0]; /* the reader's lines (supervisor-loop.c) */
	if (sb->cfg.detached) {
		close(sb->cfg.out_fd);
		close(sb->cfg.status_fd);
	}
	sb->init_pid = pid;
	sb->out_fd = outp[0];
	sb->done_fd = statp[0];
	r->state.job_pid = pid;
	log_info("job=%s: pid 1 %s cgroup %s", r->job_id,
	         born ? "born in its" : "moved into its",
	         cgroup_job_path(sb->cg));
	if (!born && (rc = cgroup_job_attach(sb->cg, pid, e)) < 0) {
		kill(pid, SIGKILL);
		close(syncp[1]);
		close(readyp[0]);
		return rc;
	}
	/* EPIPE: pid 1 failed to build the root before this go (it builds
	 * it meanwhile) and says why on the status pipe, read by collect. */
	if (write(syncp[1], "g", 1) != 1 && errno != EPIPE)
		rc = err_sys(e, TERR_IO, "start sandbox");
	close(syncp[1]);
	wait_ready(readyp[0]);
	if (rc == 0 && sb->cfg.detached)
		return detached_follow(r, sb, out_fd, done_fd, e);
	*out_fd = sb->out_fd;
	*done_fd = sb->done_fd;
	return rc;
}

static int sandbox_signal(struct runner *r, int sig, struct err *e)
{
	struct sandbox *sb = r->launcher_data;

	return cgroup_job_signal(sb->cg, sig, e);
}

static int sandbox_kill(struct runner *r, struct err *e)
{
	struct sandbox *sb = r->launcher_data;

	if (sb->pidfd >= 0) /* never a pid reused since */
		syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
	else if (sb->init_pid > 0)
		kill(sb->init_pid, SIGKILL); /* takes the pid namespace */
	return cgroup_job_kill(sb->cg, 5000, e);
}

static int sandbox_collect(struct runner *r, struct launch_exit *ex,
                           struct err *e)
{
	struct sandbox *sb = r->launcher_data;
	struct sandbox_status st = {0};
	struct cgroup_usage u;
	int wst = 0;
	ssize_t n;

	if (sb->cfg.detached) {
		sandbox_tail_stop(sb->tail);
		sb->tail = NULL;
		n = sandbox_detached_status(r->dir, &st) == 0 ? sizeof(st) : 0;
		wst = SIGKILL; /* no record: pid 1 was killed */
	} else {
		n = read(sb->done_fd, &st, sizeof(st));
	}
	while (sb->init_pid > 0 && waitpid(sb->init_pid, &wst, 0) < 0 &&
	       errno == EINTR)
		;
	sb->init_pid = -1;
	cgroup_job_kill(sb->cg, 5000, NULL); /* nothing outlives the job */
	cgroup_job_usage(sb->cg, &u);
	ex->peak_memory_bytes = u.peak_memory_bytes;
	ex->cpu_seconds = u.cpu_seconds;
	ex->oom = u.oom;
	st.msg[sizeof(st.msg) - 1] = '\0';
	if (n == (ssize_t)sizeof(st) && st.kind == SANDBOX_SETUP_FAILED)
		return err_set(e, TERR_FAIL, "sandbox: %s", st.msg);
	if (n == (ssize_t)sizeof(st) && st.kind == SANDBOX_EXEC_FAILED) {
		runner_logf(r, "tether", "%s", st.msg);
		ex->exit_code = 127;
		ex->signal = 0;
	} else if (n == (ssize_t)sizeof(st) && st.kind == SANDBOX_EXITED) {
		ex->exit_code = st.sig ? -1 : st.code;
		ex->signal = st.sig;
	} else { /* pid 1 itself was killed (SIGKILL of the whole job) */
		ex->exit_code = -1;
		ex->signal = WIFSIGNALED(wst) ? WTERMSIG(wst) : SIGKILL;
	}
	return 0;
}

/* The job died with the earlier runner (PR_SET_PDEATHSIG); remove what
 * is left of its cgroup and say so. */
static int sandbox_reattach(struct runner *r, int *out_fd, int *done_fd,
                            struct err *e)
{
	struct cgroup_limits none = {0};
	struct job_cgroup *cg = NULL;
	char name[128];

	snprintf(name, sizeof(name), "%s_%lld", r->job_id,
	         (long long)r->attempt);
	if (r->state.cgroup[0] != '\0' &&
	    cgroup_job_create(r->set.cgroup_parent, name, &none, &cg, NULL) ==
	        0)
		cgroup_job_destroy(cg); /* kills any process left in it */
	return err_set(e, TERR_UNSUPP,
	               "sandbox jobs end with their runner (no re-attach)");
}

void sandbox_set_detached(struct runner *r)
{
	struct sandbox *sb = r->launcher_data;

	sb->cfg.detached = true;
	sb->cfg.out_cap =
	    r->set.max_log_bytes > 0 ? r->set.max_log_bytes + LOGPIPE_BUF : 0;
}

void sandbox_add_mount(struct runner *r, const char *source, const char *target)
{
	struct sandbox *sb = r->launcher_data;
	size_t n = sb->cfg.nmounts;

	sb->cfg.mounts =
	    realloc(sb->cfg.mounts, (n + 2) * sizeof(*sb->cfg.mounts));
	if (sb->cfg.mounts == NULL)
		abort();
	sb->cfg.mounts[n] =
	    (struct sandbox_mount){xstrdup(source), target, true};
	memset(&sb->cfg.mounts[n + 1], 0, sizeof(sb->cfg.mounts[n + 1]));
	sb->cfg.nmounts++;
}

int sandbox_adopt(struct runner *r, int *out_fd, int *done_fd, struct err *e)
{
	struct sandbox *sb = xcalloc(1, sizeof(*sb));
	char name[128];
	int rc;

	sb->out_fd = sb->done_fd = sb->pidfd = -1;
	sb->init_pid = -1;
	sb->adopted = true;
	r->launcher_data = sb;
	fill_cfg(r, sb);
	sb->cfg.detached = true;
	snprintf(name, sizeof(name), "%s_%lld", r->job_id,
	         (long long)r->attempt);
	if ((rc = cgroup_job_open(r->set.cgroup_parent, name, &sb->cg, e)) < 0)
		return rc;
	/* -1 when pid 1 is gone: sandbox.status then says how it ended */
	sb->pidfd = sandbox_pidfd(r->state.job_pid, r->state.job_start);
	sb->tail = sandbox_tail_start(
	    r->dir, sb->pidfd, sandbox_resume_offset(r, r->state.log_start),
	    &sb->out_fd, &sb->done_fd, e);
	if (sb->tail == NULL)
		return e->code;
	*out_fd = sb->out_fd;
	*done_fd = sb->done_fd;
	return 0;
}

static void sandbox_cleanup(struct runner *r)
{
	struct sandbox *sb = r->launcher_data;

	if (sb == NULL)
		return;
	sandbox_tail_stop(sb->tail);
	if (sb->pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
		close(sb->pidfd);
	}
	if (sb->init_pid > 0) {
		kill(sb->init_pid, SIGKILL);
		waitpid(sb->init_pid, NULL, 0);
	}
	if (sb->cfg.detached) { /* the log holds it now */
		char *out = attempt_path(r->dir, SANDBOX_OUT);
		unlink(out);
		free(out);
	}
	cgroup_job_destroy(sb->cg);
	if (sb->out_fd >= 0)
		close(sb->out_fd);
	if (sb->done_fd >= 0)
		close(sb->done_fd);
	if (sb->cfg.root != NULL && !sb->root_shared)
		rmdir(sb->cfg.root);
	for (size_t i = 0; i < sb->cfg.nmounts; i++)
		free(sb->cfg.mounts[i].source);
	free(sb->cfg.mounts);
	free(sb->cfg.root);
	free(sb->cfg.cwd);
	free(sb->cfg.tb_dir);
	free(sb);
	r->launcher_data = NULL;
}

const struct launcher_ops launcher_sandbox = {
    .name = "sandbox",
    .prepare = sandbox_prepare,
    .start = sandbox_start,
    .signal = sandbox_signal,
    .kill = sandbox_kill,
    .collect = sandbox_collect,
    .reattach = sandbox_reattach,
    .cleanup = sandbox_cleanup,
};
