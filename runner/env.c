/* env.c: build or reuse a job's environment through the cache.
 *
 * env_prepare() picks the builder for spec.environment.kind, computes its
 * cache key, takes the key's lock, and either reuses <env_dir>/<key> (a
 * cache hit) or builds it in <key>.tmp.<pid> and renames it into place.
 * It then holds a shared in-use lock for the rest of the runner's life, so
 * eviction never removes an environment a job uses.  The helpers below run
 * builder processes (execv, no shell) with their output in the job log. */
#include "runner/env.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/statedir.h"
#include "common/util.h"
#include "runner/source.h"
#include "runner/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LINE_MAX_LOG 4096

static int env_use_fd = -1; /* shared lock on the env this runner uses */
/* While a directory env is built: the builder sees tmp mounted on final. */
static struct {
	const char *tmp, *final;
} env_bind;

char **env_strv_add(char **v, char *s)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	char **nv = realloc(v, (n + 2) * sizeof(*nv));
	if (nv == NULL)
		abort();
	nv[n] = s;
	nv[n + 1] = NULL;
	return nv;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void env_result_free(struct env_result *res)
{
	if (res == NULL)
		return;
	free(res->prefix);
	free(res->image);
	strv_free(res->path_prepend);
	strv_free(res->vars);
	memset(res, 0, sizeof(*res));
	if (env_use_fd >= 0) {
		env_cache_unuse(env_use_fd);
		env_use_fd = -1;
	}
}

char *env_which(const char *name)
{
	const char *path = getenv("PATH");
	const char *p = path ? path : "/usr/local/bin:/usr/bin:/bin";

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	while (*p) {
		size_t n = strcspn(p, ":");
		char *cand = xasprintf("%.*s/%s", (int)n, p, name);
		if (n > 0 && access(cand, X_OK) == 0)
			return cand;
		free(cand);
		p += n;
		if (*p == ':')
			p++;
	}
	return NULL;
}

void env_side_dir(struct runner *r, const char *prefix, const char *name)
{
	const char *slash = strrchr(prefix, '/');
	char *dir = xasprintf("%.*s/%s", (int)(slash ? slash - prefix : 0),
	                      prefix, name);

	if (mkdir(dir, 0755) == 0 && geteuid() == 0 && r->uid != 0 &&
	    chown(dir, r->uid, r->gid) < 0)
		runner_logf(r, "env", "chown %s: %s", dir, strerror(errno));
	free(dir);
}

const char *env_platform(void)
{
	static char plat[160];
	struct utsname u;
	char *osr = NULL, id[32] = "linux", ver[32] = "";

	if (plat[0])
		return plat;
	if (uname(&u) < 0)
		snprintf(u.machine, sizeof(u.machine), "unknown");
	if (file_read_all("/etc/os-release", 65536, &osr, NULL, NULL) == 0) {
		const char *l;
		if ((l = strstr(osr, "\nID=")) || strncmp(osr, "ID=", 3) == 0)
			sscanf(l ? l + 4 : osr + 3, "%31[^\n\"]", id);
		if ((l = strstr(osr, "VERSION_ID=")))
			sscanf(l + 11, "\"%31[^\"\n]", ver);
		free(osr);
	}
	snprintf(plat, sizeof(plat), "%s-%s-%s", u.machine, id, ver);
	return plat;
}

void env_key_json(json_t *canon, char out[65])
{
	char *text = json_dump_canon(canon);

	sha256_hex(text, strlen(text), out);
	free(text);
}

/* Child side, in a private mount namespace: when env_dir lies in the 0700
 * state dir, hide the state dir but for env_dir so that the job user can
 * build there (common/statedir.h); then mount the build directory on the
 * final path (env_build_dir). */
static int run_child_mounts(struct runner *r)
{
	struct err me = {0};

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		dprintf(2, "private mount namespace: %s\n", strerror(errno));
		return -1;
	}
	if (r->state_dir && r->env_dir &&
	    path_is_under(r->env_dir, r->state_dir) &&
	    statedir_mask(r->state_dir, r->env_dir, true, &me) < 0) {
		dprintf(2, "%s\n", me.msg);
		return -1;
	}
	if (mount(env_bind.tmp, env_bind.final, NULL, MS_BIND, NULL) < 0) {
		dprintf(2, "cannot mount %s on %s: %s\n", env_bind.tmp,
		        env_bind.final, strerror(errno));
		return -1;
	}
	return 0;
}

/* Child side of env_run: output to the pipe, drop to the job user, exec. */
static void run_child(struct runner *r, int wfd, char *const argv[],
                      char *const envp[])
{
	int devnull = open("/dev/null", O_RDONLY);

	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(wfd, 1) < 0 ||
	    dup2(wfd, 2) < 0)
		_exit(126);
	close_range(3, ~0U, 0);
	/* its own group, so that a stop reaches pip's children */
	setpgid(0, 0);
	if (env_bind.tmp && run_child_mounts(r) < 0)
		_exit(126);
	/* In the work directory, entered while still root: the job user
	 * cannot pass through the 0700 attempt directory, but may use files
	 * of the source relative to it (requirements.txt). */
	if (r->work_dir && chdir(r->work_dir) < 0 && chdir("/") < 0)
		_exit(126);
	if (geteuid() == 0 && r->uid != 0 &&
	    (setgroups(0, NULL) < 0 || setgid(r->gid) < 0 ||
	     setuid(r->uid) < 0))
		_exit(126);
	execve(argv[0], argv, envp ? envp : environ);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Keep the last tail_size-1 bytes of output in tail. */
static void tail_add(char *tail, size_t size, const char *line)
{
	size_t have, add = strlen(line) + 1;

	if (tail == NULL || size < 2)
		return;
	have = strlen(tail);
	while (have + add >= size && have > 0) {
		char *nl = strchr(tail, '\n');
		size_t cut = nl ? (size_t)(nl - tail) + 1 : have;
		memmove(tail, tail + cut, have - cut + 1);
		have -= cut;
	}
	if (add >= size)
		line += add - size + 1;
	snprintf(tail + have, size - have, "%s\n", line);
}

/* Log complete lines of buf (all of it at eof); returns what is left. */
static size_t pump_lines(struct runner *r, char *buf, size_t len, bool eof,
                         char *tail, size_t tsize)
{
	char *nl;

	while ((nl = memchr(buf, '\n', len)) != NULL || len == LINE_MAX_LOG ||
	       (eof && len > 0)) {
		size_t l = nl ? (size_t)(nl - buf) : len;
		buf[l] = '\0';
		runner_logf(r, "env", "%s", buf);
		tail_add(tail, tsize, buf);
		l += nl ? 1 : 0;
		memmove(buf, buf + l, len - l);
		len -= l;
	}
	return len;
}

/* Copy the child's output into the job log line by line until EOF, or until
 * the attempt must stop (cancel file, lease): then return the reason. */
static const char *run_pump(struct runner *r, int rfd, char *tail, size_t tsize)
{
	struct pollfd pfd = {.fd = rfd, .events = POLLIN};
	int64_t next = now_mono_ms() + FENCE_CHECK_MS;
	char buf[LINE_MAX_LOG + 1];
	const char *stop;
	size_t len = 0;
	ssize_t n;

	for (;;) {
		int pr = poll(&pfd, 1, FENCE_CHECK_MS);
		if (now_mono_ms() >= next) {
			next = now_mono_ms() + FENCE_CHECK_MS;
			if ((stop = source_fenced(r)) != NULL)
				return stop;
		}
		if (pr <= 0)
			continue;
		n = read(rfd, buf + len, LINE_MAX_LOG - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			len += (size_t)n;
		len = pump_lines(r, buf, len, n <= 0, tail, tsize);
		if (n <= 0)
			return NULL;
	}
}

/* Stop a builder's process group: TERM, a grace period, KILL; reap it. */
static void run_stop(pid_t pid)
{
	int status;

	kill(-pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(50 * 1000);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, &status, 0);
}

int env_run(struct runner *r, char *const argv[], char *const envp[],
            char *tail, size_t tail_size, struct err *e)
{
	int fds[2], status;
	const char *stop;
	pid_t pid;

	if (tail && tail_size)
		tail[0] = '\0';
	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_sys(e, TERR_IO, "pipe");
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return err_sys(e, TERR_IO, "fork");
	}
	if (pid == 0)
		run_child(r, fds[1], argv, envp);
	close(fds[1]);
	stop = run_pump(r, fds[0], tail, tail_size);
	close(fds[0]);
	if (stop != NULL) {
		runner_logf(r, "env", "stopping %s: %s", argv[0], stop);
		run_stop(pid);
		return err_set(e, TERR_CONFLICT,
		               "%s while building the environment (%s stopped)",
		               stop, argv[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return err_sys(e, TERR_IO, "waitpid");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return err_set(e, TERR_FAIL, "%s exited with status %d",
		               argv[0], WEXITSTATUS(status));
	return err_set(e, TERR_FAIL, "%s was killed by signal %d", argv[0],
	               WTERMSIG(status));
}

static const struct env_builder *env_builder_for(enum env_kind k)
{
	switch (k) {
	case ENV_VENV:
		return &env_builder_venv;
	case ENV_CONDA:
		return &env_builder_conda;
	case ENV_DOCKER:
		return &env_builder_docker;
	default:
		return NULL;
	}
}

/* Take the key's lock, saying so in the log when another job holds it. */
static int env_lock(struct runner *r, const char *dir, int *fd, struct err *e)
{
	if (env_cache_lock(dir, r->env.key, false, fd, NULL) == 0)
		return 0;
	runner_logf(r, "env",
	            "waiting: another job is building environment %.12s",
	            r->env.key);
	return env_cache_lock(dir, r->env.key, true, fd, e);
}

/* A builder that caches by itself (docker images). */
static int env_own_cache_locked(struct runner *r, const struct env_builder *b,
                                struct err *e)
{
	int rc = b->activate(r, NULL, &r->env, e);

	if (rc == 0) {
		r->env.cache_hit = true;
		runner_logf(r, "env", "cache hit: %s environment %.12s",
		            b->name, r->env.key);
		return 0;
	}
	if (rc != TERR_NOTFOUND)
		return rc;
	err_clear(e);
	runner_logf(r, "env", "building %s environment %.12s", b->name,
	            r->env.key);
	if ((rc = b->build(r, NULL, e)) < 0)
		return rc;
	return b->activate(r, NULL, &r->env, e);
}

/* The same, under the key's lock so that two jobs build once. */
static int env_own_cache(struct runner *r, const struct env_builder *b,
                         const char *dir, struct err *e)
{
	int lock = -1, rc;

	if ((rc = env_lock(r, dir, &lock, e)) < 0)
		return rc;
	rc = env_own_cache_locked(r, b, e);
	close(lock);
	return rc;
}

/* Make an empty directory owned by the job user (builders run as it). */
static int env_mkdir(struct runner *r, const char *path, struct err *e)
{
	if (mkdir(path, 0755) < 0)
		return err_sys(e, TERR_IO, "mkdir %s", path);
	if (geteuid() == 0 && r->uid != 0 && chown(path, r->uid, r->gid) < 0)
		return err_sys(e, TERR_IO, "chown %s", path);
	return 0;
}

/* Replace the placeholder final with the built tmp.  A builder that wrote
 * into final itself (in-process, like docker's image.json) left tmp empty:
 * then final stays. */
static int env_move_into_place(const char *tmp, const char *final,
                               struct err *e)
{
	if (rmdir(final) == 0) {
		if (rename(tmp, final) < 0)
			return err_sys(e, TERR_IO, "rename %s to %s", tmp,
			               final);
		return 0;
	}
	if (errno == ENOTEMPTY && rmdir(tmp) == 0)
		return 0;
	return err_sys(e, TERR_IO, "move %s into place", tmp);
}

/* Build key into <key>.tmp.<pid> and rename it to <key> when complete.
 * Tools write their prefix into files (venv scripts, conda), so the
 * builder runs in a private mount namespace where the tmp directory is
 * bind-mounted on an empty placeholder <key>: it builds for the final
 * path.  Without root (no mount) the build goes straight into <key>.
 * Either way <key> counts as complete only once its usage record exists. */
static int env_build_dir(struct runner *r, const struct env_builder *b,
                         const char *dir, const char *key, struct err *e)
{
	char *tmp = xasprintf("%s/%s.tmp.%d", dir, key, (int)getpid());
	char *final = xasprintf("%s/%s", dir, key);
	bool bind = geteuid() == 0;
	int64_t t0 = now_mono_ms();
	int rc;

	env_cache_clean_key(dir, key);
	if ((bind && (rc = env_mkdir(r, tmp, e)) < 0) ||
	    (rc = env_mkdir(r, final, e)) < 0)
		goto out;
	runner_logf(r, "env", "building %s environment %.12s", b->name, key);
	env_bind.tmp = bind ? tmp : NULL;
	env_bind.final = final;
	rc = b->build(r, final, e);
	memset(&env_bind, 0, sizeof(env_bind));
	if (rc < 0)
		goto out;
	if (bind && (rc = env_move_into_place(tmp, final, e)) < 0)
		goto out;
	env_cache_seal(dir, key);
	dir_fsync(dir, NULL);
	rc = env_cache_touch(dir, key, b->name, true, e);
	runner_logf(r, "env", "built %.12s in %.1f s", key,
	            (double)(now_mono_ms() - t0) / 1000.0);
out:
	if (rc < 0)
		env_cache_clean_key(dir, key);
	free(tmp);
	free(final);
	return rc;
}

/* Evict least-recently-used environments over the configured budget. */
static void env_evict(struct runner *r, const char *dir)
{
	int64_t budget = source_setting_int(r, "env_budget_bytes", 0);
	int64_t freed = 0;
	size_t removed = 0;
	struct err e = {0};

	if (budget <= 0)
		return;
	if (env_cache_prune(dir, budget, &freed, &removed, &e) < 0)
		runner_logf(r, "env", "eviction: %s", e.msg);
	else if (removed > 0)
		runner_logf(r, "env",
		            "evicted %zu unused environment(s), %" PRId64
		            " bytes, to stay under env_budget_bytes",
		            removed, freed);
}

/* The directory cache around a builder: lock, hit or build, use lock. */
static int env_cached(struct runner *r, const struct env_builder *b,
                      const char *dir, struct err *e)
{
	const char *key = r->env.key;
	char *prefix = xasprintf("%s/%s", dir, key);
	int lock = -1, rc;

	if ((rc = env_lock(r, dir, &lock, e)) < 0)
		goto out;
	if (env_cache_complete(dir, key)) {
		r->env.cache_hit = true;
		runner_logf(r, "env", "cache hit: %s environment %.12s",
		            b->name, key);
		env_cache_touch(dir, key, b->name, false, NULL);
	} else if ((rc = env_build_dir(r, b, dir, key, e)) < 0) {
		goto out;
	}
	if ((rc = env_cache_use(dir, key, &env_use_fd, e)) < 0)
		goto out;
	close(lock);
	lock = -1;
	if ((rc = b->activate(r, prefix, &r->env, e)) < 0)
		goto out;
	env_evict(r, dir);
out:
	if (lock >= 0)
		close(lock);
	free(prefix);
	return rc;
}

int env_prepare(struct runner *r, struct err *e)
{
	const struct env_builder *b = env_builder_for(r->spec->env.kind);
	char *dir = r->env_dir ? xstrdup(r->env_dir)
	                       : xasprintf("%s/envs", r->state_dir);
	int rc;

	memset(&r->env, 0, sizeof(r->env));
	if (r->spec->env.kind == ENV_NONE) {
		runner_logf(r, "env", "none: the node's own system");
		rc = 0;
		goto out;
	}
	if (b == NULL) {
		rc = err_set(e, TERR_UNSUPP,
		             "%s environments are not supported by this runner",
		             jobspec_env_name(r->spec->env.kind));
		goto out;
	}
	if ((rc = mkdir_p(dir, 0755, e)) < 0 ||
	    (rc = b->key(r, r->env.key, e)) < 0)
		goto out;
	rc = b->own_cache ? env_own_cache(r, b, dir, e)
	                  : env_cached(r, b, dir, e);
out:
	free(dir);
	return rc;
}
