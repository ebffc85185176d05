/* launch.c: prepare an attempt directory (snapshot, spec.json, lease) and
 * start its runner: an intermediate child spawns `tether-runner run DIR` in a
 * session of its own and exits, so the runner's parent is init and it
 * outlives the agent. */
#include "agent/agent.h"
#include "agent/db.h"
#include "agent/lifecycle.h"
#include "agent/metrics.h"

#include "common/attempt.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

char *launch_find_runner(const struct agent_conf *c)
{
	char self[PATH_MAX], *dir, *p;
	ssize_t n;

	if (c->runner_path != NULL)
		return xstrdup(c->runner_path);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		dir = dirname(self);
		p = xasprintf("%s/tether-runner", dir);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
		p = xasprintf("%s/../runner/tether-runner", dir);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return xasprintf("%s/tether-runner", TETHER_LIBEXECDIR);
}

/* *dst = a copy of v (NULL stays NULL), freeing the old value. */
static void launch_set(char **dst, const char *v)
{
	free(*dst);
	*dst = v != NULL ? xstrdup(v) : NULL;
}

/* allowed_mounts: comma-separated `path[:ro|:rw]`, read-only by default. */
static void launch_mounts(struct attempt_settings *s, const char *list)
{
	char *copy, *item, *save = NULL;
	size_t n = 1;

	if (list == NULL)
		return;
	for (const char *p = list; *p != '\0'; p++)
		n += *p == ',';
	s->mounts = xcalloc(n, sizeof(*s->mounts));
	copy = xstrdup(list);
	for (item = strtok_r(copy, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(item, ':');
		bool rw = colon != NULL && strcmp(colon, ":rw") == 0;
		if (colon != NULL && (rw || strcmp(colon, ":ro") == 0))
			*colon = '\0';
		s->mounts[s->nmounts].source = xstrdup(item);
		s->mounts[s->nmounts++].readonly = !rw;
	}
	free(copy);
}

/* The GPU indices assigned (a JSON array of integers in the database). */
static void launch_gpus(struct attempt_settings *s, const char *ids)
{
	json_t *gpus = json_loads(ids ? ids : "[]", 0, NULL), *g;
	size_t i;

	s->gpus = xcalloc(json_array_size(gpus) + 1, sizeof(*s->gpus));
	json_array_foreach(gpus, i, g)
	{
		if (json_is_integer(g))
			s->gpus[s->ngpus++] = (int)json_integer_value(g);
	}
	json_decref(gpus);
}

/* The runner settings of attempt t, from the agent's config. */
static void launch_settings(struct agent *a, struct att *t,
                            struct attempt_settings *s)
{
	const struct agent_conf *c = &a->conf;

	attempt_settings_init(s);
	launch_set(&s->state_dir, c->state_dir);
	launch_set(&s->job_user, c->job_user);
	launch_set(&s->cgroup_parent, c->cgroup_parent);
	free(s->env_dir);
	s->env_dir = agent_conf_env_dir(c);
	launch_set(&s->default_python, c->default_python);
	launch_set(&s->conda_tool, c->conda_tool);
	launch_set(&s->launcher, c->default_launcher);
	launch_set(&s->docker_socket, c->docker_socket);
	launch_set(&s->agent_id, a->agent_id ? a->agent_id : "");
	launch_set(&s->known_hosts, c->git_known_hosts);
	launch_set(&s->git_ca_file, c->git_ca_file);
	launch_set(&s->slurm.partition, c->slurm_partition);
	launch_set(&s->slurm.shared_dir, c->slurm_shared_dir);
	launch_set(&s->slurm.account, c->slurm_account);
	launch_set(&s->slurm.qos, c->slurm_qos);
	s->slurm.poll_ms = c->slurm_poll_ms;
	launch_set(&s->spark.master, c->spark_master);
	launch_set(&s->spark.ui, c->spark_master_ui);
	launch_set(&s->spark.home, c->spark_home);
	launch_set(&s->spark.driver_host, c->spark_driver_host);
	/* the default (yarn on PATH) is the runner's too: not written */
	launch_set(&s->spark.yarn,
	           c->yarn_command && strcmp(c->yarn_command, "yarn") != 0
	               ? c->yarn_command
	               : NULL);
	launch_set(&s->spark.yarn_conf, agent_conf_yarn_conf(c));
	s->spark.poll_ms = c->spark_poll_ms;
	s->kill_grace_ms = c->kill_grace_ms;
	s->default_pids = c->default_pids;
	s->max_log_bytes = c->max_log_bytes;
	s->env_budget_bytes = c->env_cache_budget;
	s->docker_readonly_rootfs = c->docker_readonly_rootfs;
	s->snapshot_max_bytes = c->snapshot_max_bytes;
	s->snapshot_max_entries = c->snapshot_max_entries;
	s->source_max_bytes = c->source_max_bytes;
	s->attempt_max_disk = 0;
	agent_conf_disk(c->attempt_max_disk, c->state_dir, "attempt_max_disk",
	                &s->attempt_max_disk, NULL);
	s->disk_check_ms = c->disk_check_ms;
	launch_mounts(s, c->allowed_mounts);
	launch_gpus(s, t->gpu_ids);
}

int launch_load_spec(struct agent *a, struct att *t, json_t **out,
                     struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(a->db,
	                    "SELECT spec FROM attempts WHERE job = ? AND "
	                    "attempt = ?",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_text(st, 1, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->attempt);
	if (sqlite3_step(st) == SQLITE_ROW)
		*out = json_loads((const char *)sqlite3_column_text(st, 0), 0,
		                  NULL);
	sqlite3_finalize(st);
	if (*out == NULL)
		return err_set(e, TERR_NOTFOUND, "job %s: no spec", t->job);
	return 0;
}

int launch_write_spec(struct agent *a, struct att *t, const char *dir,
                      struct err *e)
{
	struct attempt_settings set;
	json_t *spec = NULL;
	const char *l;
	int r;

	if ((r = launch_load_spec(a, t, &spec, e)) < 0)
		return r;
	launch_settings(a, t, &set);
	/* the job spec's launcher, or the configured default */
	l = json_string_value(json_object_get(spec, "launcher"));
	if (l != NULL && strcmp(l, "default") != 0)
		launch_set(&set.launcher, l);
	/* a rank of a multi-node job: the address it offers the others */
	if (json_integer_value(json_object_get(spec, "nodes")) > 1) {
		free(set.node_address);
		set.node_address = rdv_node_address(a);
	}
	r = attempt_spec_write(dir, t->job, t->attempt, spec, &set, e);
	attempt_settings_free(&set);
	json_decref(spec);
	return r;
}

/* The environment a runner gets: ours without the registration token. */
char **launch_env(void)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "TETHER_TOKEN", 12) != 0 &&
		    strncmp(environ[i], AGENT_ENV_PREFIX "TOKEN", 18) != 0)
			env[k++] = environ[i];
	return env;
}

/* What the intermediate child needs, all made before it exists: it shares
 * the agent's memory (CLONE_VM), so it allocates nothing and takes no lock
 * that another agent thread could hold. */
struct launch_spawn {
	const char *runner;
	char **argv, **env;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc; /* posix_spawn's result, read by the agent afterwards */
};

/* The intermediate child: start the runner in a session of its own and
 * exit, so the runner's parent is init.  posix_spawn returns once the
 * runner has exec'd (or failed to). */
static int launch_intermediate(void *arg)
{
	struct launch_spawn *ls = arg;
	pid_t pid;

	ls->rc = posix_spawn(&pid, ls->runner, &ls->fa, &ls->attr, ls->argv,
	                     ls->env);
	/* returning exits (clone); no _exit, which ASan's no-return hook
	 * would flag on this stack of our own */
	return ls->rc == 0 ? 0 : 127;
}

/* The runner's fds: 0 from /dev/null, 1 and 2 to runner.log (the agent's
 * own where it cannot be opened), nothing else. */
static void launch_spawn_files(struct launch_spawn *ls, const char *dir,
                               int fds[2])
{
	char *logp = xasprintf("%s/runner.log", dir);

	fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[1] = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	free(logp);
	posix_spawn_file_actions_init(&ls->fa);
	if (fds[0] >= 0)
		posix_spawn_file_actions_adddup2(&ls->fa, fds[0], 0);
	if (fds[1] >= 0) {
		posix_spawn_file_actions_adddup2(&ls->fa, fds[1], 1);
		posix_spawn_file_actions_adddup2(&ls->fa, fds[1], 2);
	}
	posix_spawn_file_actions_addclosefrom_np(&ls->fa, 3);
}

/* Start the runner: an intermediate child that shares the agent's memory
 * (no copy of its page tables, as fork made twice per job: docs/performance.md
 * F9) spawns it with setsid and exits.  Signals stay blocked in the
 * intermediate; the runner gets the agent's mask, what the agent ignores
 * stays ignored and what it catches is reset (posix_spawn), as across
 * fork and exec before. */
int launch_fork(struct agent *a, struct att *t, struct err *e)
{
	enum { STACK = 256 << 10 };
	struct launch_spawn ls = {.runner = a->runner_path, .rc = -1};
	char *argv[] = {a->runner_path, "run", t->dir, NULL};
	sigset_t all, old;
	int fds[2], status = 0, r = 0;
	pid_t pid;
	char *stack;

	stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return err_sys(e, TERR_IO, "mmap");
	ls.argv = argv;
	ls.env = launch_env();
	launch_spawn_files(&ls, t->dir, fds);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	posix_spawnattr_init(&ls.attr);
	posix_spawnattr_setflags(&ls.attr,
	                         POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigmask(&ls.attr, &old);
	pid = clone(launch_intermediate, stack + STACK,
	            CLONE_VM | CLONE_VFORK | SIGCHLD, &ls);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		r = err_sys(e, TERR_IO, "clone");
	else
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	if (r == 0 && ls.rc != 0)
		r = err_set(e, TERR_IO, "cannot execute %s: %s", a->runner_path,
		            strerror(ls.rc > 0 ? ls.rc : EINVAL));
	posix_spawnattr_destroy(&ls.attr);
	posix_spawn_file_actions_destroy(&ls.fa);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(ls.env);
	munmap(stack, STACK);
	return r;
}

static int launch_mark_row(struct agent *a, struct att *t, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(a->db,
	                    "UPDATE attempts SET state = 'running', started_at "
	                    "= ?, gpu_ids = ? WHERE job = ? AND attempt = ?",
	                    &st, e)) < 0)
		return r;
	sqlite3_bind_double(st, 1, (double)now_wall_ms() / 1000.0);
	sqlite3_bind_text(st, 2, t->gpu_ids, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, t->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, t->attempt);
	return db_step_done(a->db, st, e);
}

/* `running` before the fork, committed without waiting for the disk
 * (synchronous=NORMAL for this one commit: atomic, made durable by the
 * next synced commit).  A power loss that takes it leaves the attempt
 * `queued`; it is launched again, and its runner re-attaches to the job
 * recorded in state.json (synced) or, with no job recorded, starts it
 * (docs/recovery.md, "Durability").  The queue insert stays synced. */
static int launch_mark_running(struct agent *a, struct att *t, struct err *e)
{
	struct err fe = {0};
	int r;

	if ((r = db_relaxed(a->db, true, e)) < 0)
		return r;
	r = launch_mark_row(a, t, e);
	if (db_relaxed(a->db, false, &fe) < 0)
		log_error("agent.db: synchronous=FULL again: %s", fe.msg);
	return r < 0 ? r : att_request(t, ATT_EV_LAUNCHED, e);
}

/* Write the files and start the runner. */
static void launch_exec(struct agent *a, struct att *t)
{
	struct err e = {0};
	int r;

	t->preparing = false;
	if ((r = launch_write_spec(a, t, t->dir, &e)) < 0)
		goto fail;
	att_write_lease(t);
	if ((r = att_watch(t, &e)) < 0 ||
	    (r = launch_mark_running(a, t, &e)) < 0)
		goto fail;
	t->launched_mono = now_mono_ms();
	if ((r = launch_fork(a, t, &e)) < 0)
		goto fail;
	log_info("job=%s attempt=%lld started", t->job, (long long)t->attempt);
	metrics_add(M_ATTEMPTS_STARTED, NULL, 1);
	return;
fail:
	log_error("job=%s attempt=%lld launch: %s", t->job,
	          (long long)t->attempt, e.msg);
	att_request(t, ATT_EV_LAUNCH_FAILED, NULL); /* from queued, running */
	if (att_final_event(t, "launch_failed", e.msg, &e) < 0)
		log_error("job=%s: %s", t->job, e.msg);
}

static void launch_snapshot_done(void *arg, const struct tp_reply *rep)
{
	struct att *t = arg;
	struct agent *a = t->a;
	char *part = xasprintf("%s/%s.part", t->dir, ATTEMPT_SNAPSHOT);
	char *final = attempt_path(t->dir, ATTEMPT_SNAPSHOT);
	struct err e = {0};

	t->snap_call = NULL;
	if (rep->code == 0) {
		if (rename(part, final) < 0) {
			err_sys(&e, TERR_IO, "rename %s", part);
			goto fail;
		}
		launch_exec(a, t);
		goto out;
	}
	unlink(part);
	if (conn_failed(a, rep, "snapshot download")) {
		t->preparing = false; /* retried by the next scheduling pass */
		goto out;
	}
	err_set(&e, rep->code, "snapshot %s: %s", t->snapshot, rep->err.msg);
fail:
	log_error("job=%s: %s", t->job, e.msg);
	if (att_final_event(t, "source_failed", e.msg, &e) < 0)
		log_error("job=%s: %s", t->job, e.msg);
out:
	free(part);
	free(final);
	agent_kick(a);
}

static int launch_snapshot(struct agent *a, struct att *t, struct err *e)
{
	char *part = xasprintf("%s/%s.part", t->dir, ATTEMPT_SNAPSHOT);
	int fd, r;

	fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = err_sys(e, TERR_IO, "%s", part);
		free(part);
		return r;
	}
	free(part);
	r = a->tp->snapshot_get(a->t, t->snapshot, fd, launch_snapshot_done, t,
	                        &t->snap_call, e);
	close(fd);
	return r;
}

void launch_start(struct agent *a, struct att *t)
{
	char *snap;
	struct err e = {0};
	bool need;

	t->preparing = true;
	if (mkdir_p(t->dir, 0700, &e) < 0) {
		log_error("job=%s: %s", t->job, e.msg);
		att_final_event(t, "launch_failed", e.msg, &e);
		return;
	}
	if (checkpoint_fetch(a, t))
		return; /* launch_start again once the checkpoint is here */
	snap = attempt_path(t->dir, ATTEMPT_SNAPSHOT);
	need = !t->local && t->snapshot != NULL && access(snap, F_OK) < 0;
	free(snap);
	if (!need) {
		launch_exec(a, t);
		return;
	}
	if (!conn_usable(a))
		return; /* stays preparing; agent_tick retries when back */
	if (launch_snapshot(a, t, &e) < 0) {
		log_error("job=%s: %s", t->job, e.msg);
		att_final_event(t, "source_failed", e.msg, &e);
	}
}
