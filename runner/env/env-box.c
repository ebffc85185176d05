/* env-box.c: the sandbox an environment build runs in.
 *
 * A package's build code (setup.py, conda scripts) is the job's code, so
 * a builder process runs like the job (sandbox-*.c, docs/sandbox.md): as
 * the job user, in new mount, pid, ipc and uts namespaces (and net for
 * `network: none`), with a private /tmp, no_new_privs, no capabilities, a
 * clean signal mask, inside a cgroup with the job's limits.  Its root is
 * the host's, read-only; writable are only /tether/work (the job's
 * source, the current directory) and the cache entry being built, bound
 * at the environment's final path.  When the builder exits, pid 1 of its
 * namespace exits and takes every process left with it, and the cgroup
 * is emptied and removed: nothing outlives a build. */
#include "runner/env/env.h"

#include "common/err.h"
#include "common/util.h"
#include "runner/sandbox/cgroup.h"
#include "runner/sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOX_KILL_MS 5000 /* freeze-and-kill of what is left */

struct env_box {
	struct sandbox_cfg cfg;
	struct job_cgroup *cg;
	pid_t init;
	bool born; /* init was born in cg (no move) */
	int status_fd;
};

/* The build's cgroup: the job's limits, named after the attempt (a
 * look-ahead build has a name of its own: the job may start meanwhile). */
static int box_cgroup(struct runner *r, struct env_box *b, struct err *e)
{
	struct cgroup_limits lim = {
	    .memory = r->spec->resources.memory,
	    .cpus = r->spec->resources.cpus,
	    .pids = r->spec->resources.pids > 0 ? r->spec->resources.pids
	                                        : r->set.default_pids,
	};
	char name[160];

	snprintf(name, sizeof(name), "%s%s_%lld_env",
	         r->lookahead ? "ahead_" : "", r->job_id,
	         (long long)r->attempt);
	return cgroup_job_create(r->set.cgroup_parent, name, &lim, &b->cg, e);
}

static void box_cfg(struct runner *r, struct env_box *b, const char *tmp,
                    const char *final, char *const argv[], char *const envp[])
{
	struct sandbox_cfg *c = &b->cfg;

	c->root = xasprintf("%s/.envbox", r->dir);
	c->work = r->work_dir;
	c->state_dir = r->set.state_dir;
	c->env_prefix = final;
	c->env_src = tmp;
	c->env_rw = true;
	c->cwd = xstrdup("/tether/work");
	snprintf(c->hostname, sizeof(c->hostname), "tether-env-%s", r->job_id);
	c->net_none = r->spec->network == NET_NONE;
	c->uid = r->uid;
	c->gid = r->gid;
	c->argv = (char **)argv;
	c->envp = (char **)envp;
	c->out_fd = c->status_fd = c->sync_fd = c->ready_fd = -1;
}

void env_box_free(struct env_box *b)
{
	if (b == NULL)
		return;
	if (b->init > 0) {
		kill(b->init, SIGKILL);
		while (waitpid(b->init, NULL, 0) < 0 && errno == EINTR)
			;
	}
	cgroup_job_destroy(b->cg); /* kills anything left */
	if (b->status_fd >= 0)
		close(b->status_fd);
	if (b->cfg.root != NULL)
		rmdir(b->cfg.root);
	free(b->cfg.root);
	free(b->cfg.cwd);
	free(b);
}

/* clone into the namespaces; the child becomes the sandbox's pid 1. */
static int box_clone(struct env_box *b, int p[4][2], struct err *e)
{
	unsigned long flags =
	    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

	if (b->cfg.net_none)
		flags |= CLONE_NEWNET;
	b->cfg.out_fd = p[0][1];
	b->cfg.status_fd = p[1][1];
	b->cfg.sync_fd = p[2][0];
	b->cfg.ready_fd = p[3][1];
	b->init = cgroup_job_clone(b->cg, flags, &b->born);
	if (b->init < 0)
		return err_sys(e, TERR_PERM, "clone into new namespaces");
	if (b->init == 0) {
		close(p[0][0]);
		close(p[1][0]);
		close(p[2][1]);
		close(p[3][0]);
		sandbox_init_main(&b->cfg);
	}
	return 0;
}

int env_box_start(struct runner *r, const char *tmp, const char *final,
                  char *const argv[], char *const envp[], struct env_box **out,
                  int *out_fd, struct err *e)
{
	struct env_box *b = xcalloc(1, sizeof(*b));
	int p[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}}, rc;

	b->status_fd = -1;
	box_cfg(r, b, tmp, final, argv, envp);
	if (r->uid == 0) {
		rc = err_set(e, TERR_PERM,
		             "job_user '%s' is root: environments are never "
		             "built as root",
		             r->set.job_user);
		goto out;
	}
	if (mkdir(b->cfg.root, 0700) < 0 && errno != EEXIST) {
		rc = err_sys(e, TERR_IO, "mkdir %s", b->cfg.root);
		goto out;
	}
	if ((rc = box_cgroup(r, b, e)) < 0)
		goto out;
	for (int i = 0; i < 4; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			rc = err_sys(e, TERR_IO, "pipe");
			goto out;
		}
	if ((rc = box_clone(b, p, e)) < 0)
		goto out;
	if ((b->born || (rc = cgroup_job_attach(b->cg, b->init, e)) == 0) &&
	    write(p[2][1], "g", 1) != 1)
		rc = err_sys(e, TERR_IO, "start the build's sandbox");
	if (rc == 0) {
		*out_fd = p[0][0];
		p[0][0] = -1;
		b->status_fd = p[1][0];
		p[1][0] = -1;
		*out = b;
		b = NULL;
	}
out:
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 2; j++)
			if (p[i][j] >= 0)
				close(p[i][j]);
	env_box_free(b);
	return rc;
}

void env_box_stop(struct env_box *b, int64_t grace_ms)
{
	int64_t end = now_mono_ms() + (grace_ms > 0 ? grace_ms : 0);

	cgroup_job_signal(b->cg, SIGTERM, NULL);
	while (b->init > 0 && now_mono_ms() < end) {
		pid_t w = waitpid(b->init, NULL, WNOHANG);

		if (w == b->init || (w < 0 && errno != EINTR)) {
			b->init = 0; /* reaped: its pid may be anyone's now */
			break;
		}
		usleep(20 * 1000);
	}
	cgroup_job_kill(b->cg, BOX_KILL_MS, NULL);
	env_box_free(b);
}

int env_box_finish(struct env_box *b, const char *name, struct err *e)
{
	struct sandbox_status st = {0};
	ssize_t n;
	int rc;

	do
		n = read(b->status_fd, &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	st.msg[sizeof(st.msg) - 1] = '\0';
	if (n != (ssize_t)sizeof(st))
		rc = err_set(e, TERR_FAIL, "%s: its sandbox died", name);
	else if (st.kind == SANDBOX_SETUP_FAILED)
		rc = err_set(e, TERR_FAIL, "%s: sandbox: %s", name, st.msg);
	else if (st.kind == SANDBOX_EXEC_FAILED)
		rc = err_set(e, TERR_FAIL, "%s", st.msg);
	else if (st.sig != 0)
		rc = err_set(e, TERR_FAIL, "%s was killed by signal %d", name,
		             st.sig);
	else if (st.code != 0)
		rc = err_set(e, TERR_FAIL, "%s exited with status %d", name,
		             st.code);
	else
		rc = 0;
	env_box_free(b);
	return rc;
}
