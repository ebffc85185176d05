/* cmd-envs-build.c: `tether-runner envs build DIR`, the look-ahead build.
 *
 * While a job waits in the agent's local queue, the agent can build its
 * environment ahead of time, so that the job starts with a cache hit.  DIR
 * is a scratch directory in the attempt format (docs/state-dir.md): it
 * holds spec.json (and snapshot.tar.gz for a snapshot source).  The source
 * is fetched into DIR/work (for a requirements file or an environment.yml;
 * a git source also warms the mirror), then the environment is built or
 * found through the cache, exactly as the runner of the job will look for
 * it.  The [source] and [env] lines go to DIR/log; stdout gets one JSON
 * line {"key", "kind", "cache_hit"}.  Exit 0, or 1 with the reason. */
#include "runner/cmd.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/util.h"
#include "runner/env/env.h"
#include "runner/source/source.h"
#include "runner/supervisor/supervisor.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Load DIR/spec.json into r (as the supervisor does) and its job user. */
static int build_load(struct runner *r, const char *dir, struct err *e)
{
	struct passwd *pw;
	int rc;

	if ((rc = supervisor_load(r, dir, false, e)) < 0)
		return rc;
	r->lookahead = true; /* its build cgroup: ahead_<job>_<attempt> */
	/* bounded by the job's timeout like the job's own build */
	r->attempt_started_ms = now_mono_ms();
	if (r->set.job_user && (pw = getpwnam(r->set.job_user)) != NULL) {
		r->uid = pw->pw_uid;
		r->gid = pw->pw_gid;
	}
	if ((rc = mkdir_p(r->work_dir, 0700, e)) == 0 &&
	    chown(r->work_dir, r->uid, r->gid) < 0)
		rc = err_sys(e, TERR_IO, "chown %s", r->work_dir);
	return rc;
}

static int build_run(struct runner *r, const char *dir, struct err *e)
{
	int rc;

	if ((rc = build_load(r, dir, e)) < 0 ||
	    (rc = runner_open_files(r, e)) < 0)
		return rc;
	if (r->spec->env.kind == ENV_NONE)
		return 0;
	if ((rc = source_fetch(r, e)) < 0)
		return err_wrap(e, "source");
	return env_prepare(r, e);
}

int cmd_envs_build(int argc, char **argv)
{
	struct runner r = {.log_fd = -1, .events_fd = -1, .idle_watch_fd = -1};
	struct err e = {0};
	int rc;

	if (argc != 2 || argv[1][0] == '-')
		cli_usage_error("tether-runner envs build",
		                "give the directory holding spec.json");
	rc = build_run(&r, argv[1], &e);
	if (rc == 0) {
		json_t *j =
		    json_pack("{s:s, s:s, s:b}", "key", r.env.key, "kind",
		              jobspec_env_name(r.spec->env.kind), "cache_hit",
		              r.env.cache_hit);
		char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		printf("%s\n", text);
		free(text);
		json_decref(j);
	} else {
		fprintf(stderr, "tether-runner envs build: %s\n", e.msg);
	}
	runner_close_files(&r);
	runner_free(&r);
	return rc == 0 ? 0 : 1;
}
