/* split.c: which of the runner's two programs an attempt needs, and the
 * hand-over to tether-runner-full (split.h). */
#include "runner/split.h"

#include "common/err.h"
#include "common/jobspec.h"
#include "common/util.h"
#include "runner/runner.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FULL_NAME "tether-runner-full"

const char *runner_needs_full(const struct runner *r)
{
	char *ckpt;
	bool resume;

	if (r->spec == NULL)
		return NULL;
	if (r->spec->source.kind == SOURCE_GIT)
		return "a git source (libgit2)";
	if (r->spec->source.kind == SOURCE_SNAPSHOT)
		return "a snapshot source (libarchive)";
	if (r->launcher == LAUNCHER_DOCKER)
		return "the docker launcher (libcurl)";
	if (r->launcher == LAUNCHER_SPARK)
		return "the spark launcher (libcurl: the master's status)";
	if (r->spec->env.kind == ENV_DOCKER)
		return "a docker environment (libcurl)";
	if (r->spec->metrics.tensorboard != NULL)
		return "metrics.tensorboard (protobuf-c)";
	/* supervisor-resume.c extracts it (libarchive) */
	ckpt = xasprintf("%s/checkpoint.tar.gz", r->dir);
	resume = access(ckpt, F_OK) == 0;
	free(ckpt);
	return resume ? "a checkpoint to resume from (libarchive)" : NULL;
}

char *runner_full_path(void)
{
	char self[PATH_MAX], *p;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		p = xasprintf("%s/" FULL_NAME, dirname(self));
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return xstrdup(TETHER_BINDIR "/" FULL_NAME);
}

int runner_exec_full(char **argv, struct err *e)
{
	char *path = runner_full_path();
	char *old = argv[0];
	int rc;

	argv[0] = path;
	execv(path, argv);
	argv[0] = old;
	rc = err_sys(e, TERR_IO, "run %s", path);
	free(path);
	return rc;
}

int runner_run_full(const char *const *args, struct err *e)
{
	char *path = runner_full_path();
	const char *argv[16] = {path};
	int status = 0, rc = 0;
	pid_t pid;

	for (size_t i = 0; args[i] != NULL && i + 2 < 16; i++)
		argv[i + 1] = args[i];
	pid = fork();
	if (pid == 0) {
		execv(path, (char *const *)argv);
		_exit(127);
	}
	if (pid < 0)
		rc = err_sys(e, TERR_IO, "fork");
	else if (waitpid(pid, &status, 0) < 0)
		rc = err_sys(e, TERR_IO, "wait for %s", path);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = err_set(e, TERR_IO, "%s exited with status %d", path,
		             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	free(path);
	return rc;
}
