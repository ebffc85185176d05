/* cmd-attach-files.c: what `tether attach` copies to the machine: finding
 * tether-agent, tether-runner(-full) and install/install.sh (with the unit file
 * and configuration sample next to it) on this side, and copying them over
 * SFTP into a private temporary directory there. */
#include "cli/cli.h"
#include "cli/cmd-attach.h"

#include "common/err.h"
#include "common/util.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run cmd remotely; non-zero exit is an error showing its output. */
int attach_run_remote(struct attach *a, const char *what, const char *cmd,
                      struct buf *out, struct err *e)
{
	int status = 0, r;

	buf_init(out, 1 << 20);
	if ((r = ssh_remote_exec(a->r, cmd, out, &status, e)) < 0)
		return err_wrap(e, "%s", what);
	if (status != 0)
		return err_set(e, TERR_FAIL, "%s on %s failed (exit %d):\n%s",
		               what, ssh_remote_name(a->r), status,
		               out->data ? out->data : "");
	return 0;
}

static bool is_exec(const char *p)
{
	return access(p, X_OK) == 0;
}

/* Directory of the running `tether`. */
static char *exe_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);

	if (n <= 0)
		return xstrdup(".");
	buf[n] = '\0';
	return xstrdup(dirname(buf));
}

/* A binary in a prefix (FROM/bin/NAME) or a build tree (FROM/SUB/NAME). */
static char *find_bin(const char *from, const char *name, const char *sub)
{
	char *p = xasprintf("%s/bin/%s", from, name);

	if (is_exec(p))
		return p;
	free(p);
	p = xasprintf("%s/%s/%s", from, sub, name);
	if (is_exec(p))
		return p;
	free(p);
	return NULL;
}

/* Where install.sh is: --installer, $TETHER_SOURCE_DIR/install, next to
 * an installed tether (PREFIX/share/tether), or a build tree's source. */
static char *find_installer(const struct attach *a, const char *exe)
{
	const char *src = getenv("TETHER_SOURCE_DIR");
	char *cand[4] = {a->installer ? xstrdup(a->installer) : NULL,
	                 src ? xasprintf("%s/install/install.sh", src) : NULL,
	                 xasprintf("%s/../share/tether/install.sh", exe),
	                 xasprintf("%s/../../../install/install.sh", exe)};
	char *found = NULL;

	for (int i = 0; i < 4; i++) {
		if (found == NULL && cand[i] && access(cand[i], R_OK) == 0)
			found = cand[i];
		else
			free(cand[i]);
	}
	return found;
}

struct local_files {
	char *agent, *runner, *runner_full, *installer;
	char *dir; /* the installer's */
};

static void local_files_free(struct local_files *l)
{
	free(l->agent);
	free(l->runner);
	free(l->runner_full);
	free(l->installer);
	free(l->dir);
}

/* The files to copy: from --from (a build tree or a prefix), else from
 * around the running tether. */
static int find_local(const struct attach *a, struct local_files *l,
                      struct err *e)
{
	char *exe = exe_dir(), *from, *tmp;

	from = a->from ? xstrdup(a->from) : xasprintf("%s/../..", exe);
	l->agent = find_bin(from, "tether-agent", "agent");
	if (l->agent == NULL && a->from == NULL) {
		free(from);
		from = xasprintf("%s/..", exe);
		l->agent = find_bin(from, "tether-agent", "agent");
	}
	l->runner = find_bin(from, "tether-runner", "runner");
	/* the heavy half of the runner (docs/architecture.md) */
	l->runner_full = find_bin(from, "tether-runner-full", "runner");
	l->installer = find_installer(a, exe);
	free(from);
	free(exe);
	if (l->agent == NULL || l->runner == NULL || l->runner_full == NULL ||
	    l->installer == NULL)
		return err_set(
		    e, TERR_NOTFOUND,
		    "cannot find %s (use --from DIR, a build tree or "
		    "an installed prefix, and --installer FILE)",
		    l->agent == NULL         ? "tether-agent"
		    : l->runner == NULL      ? "tether-runner"
		    : l->runner_full == NULL ? "tether-runner-full"
		                             : "install/install.sh");
	tmp = xstrdup(l->installer);
	l->dir = xstrdup(dirname(tmp));
	free(tmp);
	return 0;
}

static int put(struct attach *a, const char *local, const char *name, long mode,
               struct err *e)
{
	char *p = xasprintf("%s/%s", a->rdir, name);
	int r = ssh_remote_put(a->r, local, p, mode, e);

	free(p);
	return r;
}

/* Copy the binaries and the installer into a fresh directory there. */
int attach_upload(struct attach *a, struct err *e)
{
	static const char *const extras[] = {
	    "tether-agent.service", "agent.conf.sample", "uninstall.sh"};
	struct local_files l = {0};
	struct buf out = {0};
	char *q;
	int r;

	if ((r = find_local(a, &l, e)) < 0)
		goto out;
	if ((r = attach_run_remote(
	         a, "make a temporary directory",
	         "d=$(mktemp -d /tmp/tether-attach.XXXXXX) && "
	         "mkdir $d/bin && echo $d",
	         &out, e)) < 0)
		goto out;
	a->rdir = strndup(out.data, strcspn(out.data, "\n"));
	if ((r = put(a, l.agent, "bin/tether-agent", 0755, e)) < 0 ||
	    (r = put(a, l.runner, "bin/tether-runner", 0755, e)) < 0 ||
	    (r = put(a, l.runner_full, "bin/tether-runner-full", 0755, e)) <
	        0 ||
	    (r = put(a, l.installer, "install.sh", 0755, e)) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
		q = xasprintf("%s/%s", l.dir, extras[i]);
		if (access(q, R_OK) == 0)
			r = put(a, q, extras[i], 0644, e);
		free(q);
		if (r < 0)
			goto out;
	}
	if (a->c->ca != NULL)
		r = put(a, a->c->ca, "ca.crt", 0644, e);
out:
	buf_free(&out);
	local_files_free(&l);
	return r;
}
