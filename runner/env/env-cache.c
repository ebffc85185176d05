/* env-cache.c: the on-disk environment cache under env_dir.
 *
 * Complete environments are directories named by their 64-hex key, each
 * with a usage record .meta/<key>.json (kind, size, created, last_used)
 * written after the build is sealed and in place: a key counts as complete
 * only with both.  The record lies outside the tree the build (job code,
 * as the job user) writes, so no build can plant it (a FIFO or a symlink
 * that the root runner would open and block on, or a "complete" marker
 * for an unsealed tree).
 * .locks/<key>.lock is held exclusively while a key is built or evicted,
 * .locks/<key>.use is held shared by every runner whose job uses the env:
 * eviction takes both without waiting and skips a key it cannot lock.
 * Lock files are never removed (removing a lock file races with openers).
 * `tether-runner envs [prune]` (cmd-envs.c) lists and prunes the cache. */
#include "runner/env/env.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *meta_path(const char *env_dir, const char *key)
{
	return xasprintf("%s/.meta/%s.json", env_dir, key);
}

static bool key_valid(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Open <dir>/.locks/<key><suffix>, creating the .locks directory. */
static int lock_open(const char *dir, const char *key, const char *suffix,
                     int *fd, struct err *e)
{
	char *ldir = xasprintf("%s/.locks", dir);
	char *path = xasprintf("%s/%s%s", ldir, key, suffix);
	int rc = 0;

	if (mkdir(ldir, 0700) < 0 && errno != EEXIST)
		rc = err_sys(e, TERR_IO, "mkdir %s", ldir);
	else if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		rc = err_sys(e, TERR_IO, "open %s", path);
	free(ldir);
	free(path);
	return rc;
}

static int lock_take(const char *dir, const char *key, const char *suffix,
                     int how, int *fd, struct err *e)
{
	int rc = lock_open(dir, key, suffix, fd, e);

	if (rc < 0)
		return rc;
	while (flock(*fd, how) < 0) {
		if (errno == EINTR)
			continue;
		rc = errno == EWOULDBLOCK
		         ? err_set(e, TERR_BUSY, "%.12s is locked", key)
		         : err_sys(e, TERR_IO, "flock %.12s%s", key, suffix);
		close(*fd);
		*fd = -1;
		return rc;
	}
	return 0;
}

int env_cache_lock_fd(const char *env_dir, const char *key, int *fd,
                      struct err *e)
{
	return lock_open(env_dir, key, ".lock", fd, e);
}

int env_cache_lock(const char *env_dir, const char *key, bool wait, int *fd,
                   struct err *e)
{
	return lock_take(env_dir, key, ".lock",
	                 wait ? LOCK_EX : LOCK_EX | LOCK_NB, fd, e);
}

int env_cache_use(const char *env_dir, const char *key, int *fd, struct err *e)
{
	return lock_take(env_dir, key, ".use", LOCK_SH, fd, e);
}

void env_cache_unuse(int fd)
{
	if (fd >= 0)
		close(fd);
}

bool env_cache_complete(const char *env_dir, const char *key)
{
	char *meta = meta_path(env_dir, key);
	char *path = xasprintf("%s/%s", env_dir, key);
	struct stat st;
	bool ok = lstat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	          lstat(meta, &st) == 0 && S_ISREG(st.st_mode);

	free(meta);
	free(path);
	return ok;
}

void env_cache_clean_key(const char *env_dir, const char *key)
{
	char *path = xasprintf("%s/%s", env_dir, key);
	char *meta = meta_path(env_dir, key);
	size_t klen = strlen(key);
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode))
		unlink(path); /* the symlink of a crashed build */
	else if (lstat(path, &st) == 0 && !env_cache_complete(env_dir, key))
		rm_rf(path, NULL);
	if (lstat(path, &st) < 0)
		unlink(meta); /* a record without its environment */
	free(path);
	free(meta);
	if ((d = opendir(env_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, key, klen) != 0 ||
		    strncmp(de->d_name + klen, ".tmp.", 5) != 0)
			continue;
		char *p = xasprintf("%s/%s", env_dir, de->d_name);
		rm_rf(p, NULL);
		free(p);
	}
	closedir(d);
}

static int meta_read(const char *env_dir, const char *key,
                     struct env_entry *ent)
{
	char *path = meta_path(env_dir, key), *text = NULL;
	json_t *j = NULL;
	const char *kind = "unknown";
	int rc;

	memset(ent, 0, sizeof(*ent));
	snprintf(ent->key, sizeof(ent->key), "%s", key);
	if ((rc = file_read_all(path, 65536, &text, NULL, NULL)) == 0 &&
	    (rc = json_parse(text, strlen(text), 8, &j, NULL)) == 0) {
		json_get_str(j, "meta", "kind", false, 15, &kind, NULL);
		json_get_int(j, "meta", "size_bytes", false, 0, INT64_MAX,
		             &ent->size_bytes, NULL);
		json_get_int(j, "meta", "created", false, 0, INT64_MAX,
		             &ent->created, NULL);
		json_get_int(j, "meta", "last_used", false, 0, INT64_MAX,
		             &ent->last_used, NULL);
		snprintf(ent->kind, sizeof(ent->kind), "%s", kind);
	}
	json_decref(j);
	free(text);
	free(path);
	return rc;
}

/* Write the usage record; size < 0: measure the directory.  Durable
 * unless it only moves last_used (which only orders evictions). */
static int meta_write(const char *env_dir, const char *key, const char *kind,
                      int64_t size, bool measure, bool durable, struct err *e)
{
	char *path = meta_path(env_dir, key);
	char *mdir = xasprintf("%s/.meta", env_dir);
	char *dir = xasprintf("%s/%s", env_dir, key), *text;
	struct env_entry old;
	int64_t now = (int64_t)time(NULL);
	int rc;

	if (meta_read(env_dir, key, &old) < 0)
		old.created = now;
	if (size >= 0)
		old.size_bytes = size;
	else if (measure || old.size_bytes == 0)
		old.size_bytes = env_cache_tree_size(dir);
	json_t *j =
	    json_pack("{s:s, s:s, s:I, s:I, s:I}", "key", key, "kind", kind,
	              "size_bytes", (json_int_t)old.size_bytes, "created",
	              (json_int_t)old.created, "last_used", (json_int_t)now);
	text = json_dumps(j, JSON_SORT_KEYS);
	if (mkdir(mdir, 0755) < 0 && errno != EEXIST)
		rc = err_sys(e, TERR_IO, "mkdir %s", mdir);
	else if (durable)
		rc = file_write_atomic(path, text, strlen(text), 0644, e);
	else
		rc = file_replace(path, text, strlen(text), 0644, e);
	free(text);
	json_decref(j);
	free(path);
	free(mdir);
	free(dir);
	return rc;
}

/* A record whose last_used is this recent is not rewritten on a hit:
 * eviction orders by the minute, and a burst of jobs on one environment
 * does not replace the record (a new file each time) for every job. */
#define TOUCH_EVERY_S 60

int env_cache_touch(const char *env_dir, const char *key, const char *kind,
                    bool measure, struct err *e)
{
	struct env_entry old;
	int64_t now = (int64_t)time(NULL);

	if (!measure && meta_read(env_dir, key, &old) == 0 &&
	    old.size_bytes > 0 && strcmp(old.kind, kind) == 0 &&
	    old.last_used <= now && now - old.last_used < TOUCH_EVERY_S)
		return 0;
	return meta_write(env_dir, key, kind, -1, measure, measure, e);
}

int env_cache_record(const char *env_dir, const char *key, const char *kind,
                     int64_t size, struct err *e)
{
	char *dir = xasprintf("%s/%s", env_dir, key);
	int rc = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		rc = err_sys(e, TERR_IO, "mkdir %s", dir);
	free(dir);
	return rc < 0 ? rc
	              : meta_write(env_dir, key, kind, size, false, true, e);
}

/* True when someone holds the shared use lock of key. */
static bool key_in_use(const char *env_dir, const char *key)
{
	int fd = -1;

	if (lock_take(env_dir, key, ".use", LOCK_EX | LOCK_NB, &fd, NULL) < 0)
		return true;
	close(fd);
	return false;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct env_entry *x = a, *y = b;

	if (x->last_used != y->last_used)
		return x->last_used < y->last_used ? -1 : 1;
	return strcmp(x->key, y->key);
}

int env_cache_list(const char *env_dir, struct env_entry **out, size_t *n,
                   struct err *e)
{
	struct env_entry *v = NULL;
	size_t len = 0;
	DIR *d = opendir(env_dir);
	struct dirent *de;

	*out = NULL;
	*n = 0;
	if (d == NULL)
		return errno == ENOENT
		           ? 0
		           : err_sys(e, TERR_IO, "open %s", env_dir);
	while ((de = readdir(d)) != NULL) {
		if (!key_valid(de->d_name) ||
		    !env_cache_complete(env_dir, de->d_name))
			continue;
		v = realloc(v, (len + 1) * sizeof(*v));
		if (v == NULL)
			abort();
		meta_read(env_dir, de->d_name, &v[len]);
		v[len].in_use = key_in_use(env_dir, de->d_name);
		len++;
	}
	closedir(d);
	if (len > 1)
		qsort(v, len, sizeof(*v), entry_cmp);
	*out = v;
	*n = len;
	return 0;
}

/* Remove one environment if nobody builds or uses it; 1 when removed. */
static int evict_one(const char *env_dir, const struct env_entry *ent)
{
	int lock = -1, use = -1, done = 0;

	if (lock_take(env_dir, ent->key, ".lock", LOCK_EX | LOCK_NB, &lock,
	              NULL) < 0)
		return 0;
	if (lock_take(env_dir, ent->key, ".use", LOCK_EX | LOCK_NB, &use,
	              NULL) == 0) {
		char *path = xasprintf("%s/%s", env_dir, ent->key);
		char *gone = xasprintf("%s/%s.tmp.evict", env_dir, ent->key);
		char *meta = meta_path(env_dir, ent->key);
		/* no longer complete first, then out of the way */
		unlink(meta);
		free(meta);
		if (rename(path, gone) == 0) {
			char *packed =
			    xasprintf("%s/.spark/%s", env_dir, ent->key);
			rm_rf(gone, NULL);
			rm_rf(packed, NULL); /* for Spark's executors */
			free(packed);
			done = 1;
		}
		free(path);
		free(gone);
		close(use);
	}
	close(lock);
	return done;
}

int env_cache_prune(const char *env_dir, int64_t budget, int64_t *freed,
                    size_t *removed, struct err *e)
{
	return env_cache_prune_with(env_dir, budget, NULL, NULL, freed, removed,
	                            e);
}

int env_cache_prune_with(const char *env_dir, int64_t budget,
                         void (*evicted)(void *arg,
                                         const struct env_entry *ent),
                         void *arg, int64_t *freed, size_t *removed,
                         struct err *e)
{
	struct env_entry *v;
	size_t n, gone = 0;
	int64_t total = 0, fr = 0;
	int rc;

	if ((rc = env_cache_list(env_dir, &v, &n, e)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		total += v[i].size_bytes;
	for (size_t i = 0; i < n && (budget < 0 || total > budget); i++) {
		if (v[i].in_use || !evict_one(env_dir, &v[i]))
			continue;
		if (evicted != NULL)
			evicted(arg, &v[i]);
		total -= v[i].size_bytes;
		fr += v[i].size_bytes;
		gone++;
	}
	free(v);
	if (freed)
		*freed = fr;
	if (removed)
		*removed = gone;
	return 0;
}
