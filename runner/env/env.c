/* env.c: build or reuse a job's environment through the cache.
 *
 * env_prepare() picks the builder for spec.environment.kind, computes its
 * cache key, takes the key's lock, and either reuses <env_dir>/<key> (a
 * cache hit) or builds it in <key>.tmp.<pid> and renames it into place.
 * It then holds a shared in-use lock for the rest of the runner's life, so
 * eviction never removes an environment a job uses.  Builder processes
 * are run by env-run.c. */
#include "runner/env/env.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/source/source.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

static int env_use_fd = -1; /* shared lock on the env this runner uses */

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

char **env_strv_pass(char **v, const char *const *names)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (getenv(names[i]) != NULL)
			v = env_strv_add(
			    v, xasprintf("%s=%s", names[i], getenv(names[i])));
	return v;
}

void env_result_free(struct env_result *res)
{
	if (res == NULL)
		return;
	free(res->prefix);
	free(res->image);
	runner_strv_free(res->path_prepend);
	runner_strv_free(res->vars);
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

/* Does a requirement (a spec entry, a requirements file line, a pip
 * option and its value) name something in the job's own tree rather
 * than on an index: a path ("./pkg", "wheels/x.whl", "/abs"), a file:
 * URL, -e/-r/-c, a --find-links directory?  Such code is not in the key's
 * text, so the key must carry the source (env_source_identity). */
static bool opt_takes_path(const char *o, size_t n)
{
	static const char *const opts[] = {
	    "-e", "--editable",   "-r", "--requirement", "-c", "--constraint",
	    "-f", "--find-links", NULL};

	for (size_t i = 0; opts[i]; i++)
		if (strlen(opts[i]) == n && strncmp(o, opts[i], n) == 0)
			return true;
	return false;
}

static bool names_path(const char *v)
{
	size_t n = strcspn(v, " \t;#");

	if (n == 0)
		return false;
	if (memmem(v, n, "file:", 5) != NULL)
		return true;
	if (memmem(v, n, "://", 3) != NULL)
		return false; /* an index, a VCS or an archive URL */
	return v[0] == '.' || v[0] == '/' || v[0] == '~' ||
	       memchr(v, '/', n) != NULL ||
	       (n > 4 && memcmp(v + n - 4, ".whl", 4) == 0) ||
	       (n > 7 && memcmp(v + n - 7, ".tar.gz", 7) == 0) ||
	       (n > 4 && memcmp(v + n - 4, ".zip", 4) == 0);
}

bool env_req_local(const char *line, const char *next)
{
	const char *v;
	size_t n;

	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0' || *line == '#')
		return false;
	if (*line != '-') {
		const char *at = strchr(line, '@');

		if (strstr(line, "file:") != NULL)
			return true;
		/* "name @ ./dir": a direct reference */
		return names_path(at ? at + 1 + strspn(at + 1, " \t") : line);
	}
	n = strcspn(line, " \t=");
	if (!opt_takes_path(line, n))
		return false;
	if (line[n] == '=' || ((line[n] == ' ' || line[n] == '\t') &&
	                       line[n + strspn(line + n, " \t")] != '\0'))
		v = line + n + strspn(line + n, " \t=");
	else
		v = next;
	/* -e/-r/-c/-f name a file or tree of the source unless it is a URL;
	 * with no value at all, assume the worst */
	if (v == NULL)
		return true;
	return strstr(v, "://") == NULL || strstr(v, "file:") != NULL;
}

bool env_text_local(const char *text, size_t len, bool list_items)
{
	const char *p = text, *end = text + len;
	char line[1024];

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		const char *l = line;

		snprintf(line, sizeof(line), "%.*s", (int)n, p);
		p = nl ? nl + 1 : end;
		if (list_items) { /* environment.yml: only "- item" lines */
			l += strspn(l, " \t");
			if (*l != '-' || (l[1] != ' ' && l[1] != '\t'))
				continue;
			l += 2;
		}
		if (env_req_local(l, NULL))
			return true;
	}
	return false;
}

const char *env_source_identity(struct runner *r, char *buf, size_t size)
{
	const struct jobspec *s = r->spec;

	if (s->source.kind == SOURCE_GIT && r->commit != NULL)
		snprintf(buf, size, "git:%s", r->commit);
	else if (s->source.kind == SOURCE_SNAPSHOT && s->source.snapshot)
		snprintf(buf, size, "snapshot:%s", s->source.snapshot);
	else if (s->source.kind == SOURCE_NONE)
		snprintf(buf, size, "none");
	else /* a local directory (or a commit not known yet): this job only */
		snprintf(buf, size, "job:%s", r->job_id ? r->job_id : "?");
	return buf;
}

bool env_spec_local(const char **reqs, const char **opts)
{
	for (size_t i = 0; reqs && reqs[i]; i++)
		if (env_req_local(reqs[i], NULL))
			return true;
	for (size_t i = 0; opts && opts[i]; i++)
		if (env_req_local(opts[i], opts[i + 1]))
			return true;
	return false;
}

void env_key_json(json_t *canon, char out[65])
{
	char *text = json_dump_canon(canon);

	sha256_hex(text, strlen(text), out);
	free(text);
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
	int rc;

	if (env_cache_lock(dir, r->env.key, false, fd, NULL) == 0)
		return 0;
	runner_logf(r, "env",
	            "waiting: another job is building environment %.12s",
	            r->env.key);
	/* the lock file is open (the try above): wait on it, but not past
	 * a cancel or the lease (source_lock_wait) */
	if ((rc = env_cache_lock_fd(dir, r->env.key, fd, e)) < 0)
		return rc;
	if ((rc = source_lock_wait(r, *fd, "the environment's build lock", e)) <
	    0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
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
	/* in use from now on; listed and counted in the budget (env-images.c)
	 */
	if (rc == 0 &&
	    (rc = env_cache_use(dir, r->env.key, &env_use_fd, e)) == 0 &&
	    env_images_record(r, dir, e) < 0) {
		runner_logf(r, "env", "not counted in env_budget_bytes: %s",
		            e->msg);
		err_clear(e);
	}
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
	env_run_bind(bind ? tmp : NULL, final);
	rc = b->build(r, final, e);
	env_run_bind(NULL, NULL);
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
	int64_t budget = r->set.env_budget_bytes;
	int64_t freed = 0;
	size_t removed = 0;
	struct err e = {0};

	if (budget <= 0)
		return;
	if (env_cache_prune_with(dir, budget, env_images_evicted,
	                         (void *)r->set.docker_socket, &freed, &removed,
	                         &e) < 0)
		runner_logf(r, "env", "eviction: %s", e.msg);
	else if (removed > 0)
		runner_logf(r, "env",
		            "evicted %zu unused environment(s), %" PRId64
		            " bytes, to stay under env_budget_bytes",
		            removed, freed);
	if (r->spec->env.kind == ENV_DOCKER)
		env_images_prune(r);
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

static char *env_dir_of(const struct runner *r)
{
	return r->set.env_dir ? xstrdup(r->set.env_dir)
	                      : xasprintf("%s/envs", r->set.state_dir);
}

int env_hold(struct runner *r, struct err *e)
{
	char *dir;
	int rc;

	if (r->env.key[0] == '\0' || env_use_fd >= 0)
		return 0;
	dir = env_dir_of(r);
	rc = env_cache_use(dir, r->env.key, &env_use_fd, e);
	free(dir);
	return rc;
}

int env_prepare(struct runner *r, struct err *e)
{
	const struct env_builder *b = env_builder_for(r->spec->env.kind);
	char *dir = env_dir_of(r);
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
	if (rc == 0 && b->own_cache)
		env_evict(r, dir);
out:
	free(dir);
	return rc;
}
