/* env.h: building and caching a job's environment (none, venv, conda,
 * docker).  One builder per kind behind struct env_builder; env_prepare()
 * does the cache, the lock and the [env] log lines around it.
 *
 * Cache layout under r->set.env_dir (docs/environments.md):
 *   <key>/                 an environment (prefix), complete once
 *   .meta/<key>.json       its usage record (kind, size, created, last_used)
 *                          exists (outside the tree the build writes)
 *   <key>.tmp.<pid>/       being built; renamed to <key> when complete
 *   .locks/<key>.lock      flock LOCK_EX while building or evicting
 *   .locks/<key>.use       flock LOCK_SH by every runner using the env
 *   .python-versions/<h>   a venv interpreter's version, by its stat
 * While building, <key> is an empty placeholder and the builder runs in a
 * private mount namespace with <key>.tmp.<pid> bind-mounted on it, so that
 * tools that write their prefix into files (venv scripts, conda) build for
 * the final path; <key> without its usage record is never taken for a
 * complete environment (a crash mid-build leaves nothing usable). */
#ifndef TETHER_ENV_H
#define TETHER_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "runner/runner.h"

struct err;

struct env_builder {
	const char *name;
	/* Cache key: sha256 hex of the canonical spec (kind, file contents,
	 * interpreter version, options, platform). */
	int (*key)(struct runner *r, char out[65], struct err *e);
	/* Build into prefix (a fresh directory, renamed into place by the
	 * caller on success).  Output goes to the job log as "[env] ...".
	 * For an own_cache builder prefix is NULL. */
	int (*build)(struct runner *r, const char *prefix, struct err *e);
	/* Fill res (PATH entries, variables, image) for a built prefix.
	 * For an own_cache builder prefix is NULL and TERR_NOTFOUND means
	 * "not built yet" (env_prepare then calls build and activate). */
	int (*activate)(struct runner *r, const char *prefix,
	                struct env_result *res, struct err *e);
	/* The builder caches by key itself (docker: image tether-env:<key>);
	 * env_prepare only takes the per-key lock around it. */
	bool own_cache;
};

extern const struct env_builder env_builder_venv;
extern const struct env_builder env_builder_conda;
extern const struct env_builder env_builder_docker;

/* Build or reuse the job's environment; fills r->env.  Failure means the
 * attempt ends env_failed with the message in the log. */
int env_prepare(struct runner *r, struct err *e);
/* A runner re-attached to a running job (no env phase): take the in-use
 * lock of r->env.key again, so eviction leaves the job's environment. */
int env_hold(struct runner *r, struct err *e);
void env_result_free(struct env_result *res);

/* env.c and env-run.c: helpers for builders. */
/* Run argv (execv, no shell) with envp (NULL: the runner's environment),
 * in r->work_dir; when the runner is root, in the build's sandbox
 * (env-box.c) as the job user, else in a process group of its own; each
 * output line goes to the job log as "[env] line".  The last lines of
 * output are kept in tail (may be NULL) for the error message.  Non-zero
 * exit is TERR_FAIL naming argv[0] and the status. */
int env_run(struct runner *r, char *const argv[], char *const envp[],
            char *tail, size_t tail_size, struct err *e);
/* The same without logging: out gets the last size-1 bytes of output
 * (an interpreter's version line). */
int env_run_capture(struct runner *r, char *const argv[], char *out,
                    size_t size, struct err *e);
/* env-box.c: a builder process in a sandbox like the job's (env_run as
 * root): tmp bound writable at final (NULL: no environment mount), the
 * work directory writable at /tether/work, the rest read-only.  out_fd
 * gets the read end of its output. */
struct env_box;
int env_box_start(struct runner *r, const char *tmp, const char *final,
                  char *const argv[], char *const envp[], struct env_box **out,
                  int *out_fd, struct err *e);
/* SIGTERM to every process of the build, grace_ms, then SIGKILL; frees. */
void env_box_stop(struct env_box *b, int64_t grace_ms);
/* After EOF on its output: how the builder (name) ended; frees. */
int env_box_finish(struct env_box *b, const char *name, struct err *e);
void env_box_free(struct env_box *b);
/* Make <env_dir>/<name> next to prefix (a builder's HOME, micromamba's
 * root prefix), owned by the job user whom builders run as. */
void env_side_dir(struct runner *r, const char *prefix, const char *name);
/* For the next env_run calls (env.c's directory builds): mount tmp on
 * final in the builder's private mount namespace; NULL tmp: no mount. */
void env_run_bind(const char *tmp, const char *final);
/* Platform string for cache keys: "<machine>-<os id>-<os version>". */
const char *env_platform(void);
/* Hash a canonical JSON object (sorted keys) into out. */
void env_key_json(json_t *canon, char out[65]);
/* Requirements that name code in the job's tree ("./pkg", "-e .",
 * "-r more.txt", a file: URL, a --find-links directory) are not in the
 * key's text: a key over such a spec includes env_source_identity() (the
 * git commit, the snapshot id, else the job), so that no two sources
 * share an environment built from their own code (docs/environments.md).
 * env_req_local: one entry (next: the following argv word, for options);
 * env_text_local: every line of a requirements file (list_items: only the
 * "- item" lines of an environment.yml); env_spec_local: the spec's
 * requirements and pip_options. */
bool env_req_local(const char *line, const char *next);
bool env_text_local(const char *text, size_t len, bool list_items);
bool env_spec_local(const char **reqs, const char **opts);
const char *env_source_identity(struct runner *r, char *buf, size_t size);
/* NULL-terminated string vector helpers for res->path_prepend / vars. */
char **env_strv_add(char **v, char *s);
/* Add "NAME=value" for each of names set in the runner's environment
 * (proxy settings for builders). */
char **env_strv_pass(char **v, const char *const *names);
/* Find an executable named name on the runner's PATH; heap string. */
char *env_which(const char *name);

/* env-cache.c: the environment cache. */
struct env_entry {
	char key[65];
	char kind[16];
	int64_t size_bytes;
	int64_t created;   /* unix seconds */
	int64_t last_used; /* unix seconds */
	bool in_use;
};

/* Open (not take) the key's build lock file, for a caller that waits on
 * it its own way (source_lock_wait). */
int env_cache_lock_fd(const char *env_dir, const char *key, int *fd,
                      struct err *e);
/* Take the build lock for key; without wait, TERR_BUSY when it is held. */
int env_cache_lock(const char *env_dir, const char *key, bool wait, int *fd,
                   struct err *e);
/* Take a shared in-use lock for key; kept until env_cache_unuse. */
int env_cache_use(const char *env_dir, const char *key, int *fd, struct err *e);
void env_cache_unuse(int fd);
/* True when <env_dir>/<key> is a complete environment. */
bool env_cache_complete(const char *env_dir, const char *key);
/* Remove leftovers of crashed builds of key (call with the lock held). */
void env_cache_clean_key(const char *env_dir, const char *key);
/* After a build by the job user: give the environment to root, read-only
 * for others, so that no job can change what later jobs use. */
void env_cache_seal(const char *env_dir, const char *key);
/* Disk usage of a tree in bytes (blocks), not following symlinks. */
int64_t env_cache_tree_size(const char *path);
/* Write or refresh the usage record (size measured when measure, i.e.
 * after a build: then durably; a hit only moves last_used, not durably). */
int env_cache_touch(const char *env_dir, const char *key, const char *kind,
                    bool measure, struct err *e);
/* List complete environments, oldest use first. */
int env_cache_list(const char *env_dir, struct env_entry **out, size_t *n,
                   struct err *e);
/* Evict least-recently-used environments not in use until the total is at
 * most budget bytes (budget < 0: remove every unused one).  freed and
 * removed (may be NULL) get the totals. */
int env_cache_prune(const char *env_dir, int64_t budget, int64_t *freed,
                    size_t *removed, struct err *e);
/* The same, calling evicted(arg, entry) after each removal (for caches
 * kept outside env_dir: env_images_evicted removes a docker image). */
int env_cache_prune_with(const char *env_dir, int64_t budget,
                         void (*evicted)(void *arg,
                                         const struct env_entry *ent),
                         void *arg, int64_t *freed, size_t *removed,
                         struct err *e);
/* Make <env_dir>/<key> with a usage record of the given size, for a
 * builder that caches outside env_dir (docker images), so it is listed,
 * counted in the budget and evicted like the others. */
int env_cache_record(const char *env_dir, const char *key, const char *kind,
                     int64_t size, struct err *e);

/* env-images.c: docker images (tether-env:<key>) under the budget. */
/* An evicted entry of kind docker: remove its image (arg: the engine's
 * socket path). */
void env_images_evicted(void *socket_path, const struct env_entry *ent);
/* Record the job's image in the cache (its size from the engine). */
int env_images_record(struct runner *r, const char *env_dir, struct err *e);
/* Remove dangling tether-env images (labelled tether.env, untagged). */
void env_images_prune(struct runner *r);

#endif
