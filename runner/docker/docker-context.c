/* docker-context.c: a build context as a tar stream (libarchive), honouring
 * .dockerignore the way the docker CLI does, and hashed for the env key. */
#include "runner/docker/docker.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/jobfile.h"
#include "runner/runner.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IGNORE_MAX (1 << 20)
#define CTX_DEPTH  64
#define CHUNK      65536

struct ctx {
	int root_fd;
	char **patterns;
	bool has_exceptions;
	const char *dockerfile;
	struct archive *a;
	struct sha256_ctx *key;
	struct err *e;
	char chunk[CHUNK];
};

/* Match one character class "[...]" at p against c; *len gets its size. */
static bool class_match(const char *p, char c, size_t *len)
{
	const char *end = strchr(p + 1 + (p[1] == ']'), ']');
	char cls[256], one[2] = {c, 0};

	if (end == NULL || (size_t)(end - p) + 2 > sizeof(cls)) {
		*len = 1;
		return c == '[';
	}
	*len = (size_t)(end - p) + 1;
	memcpy(cls, p, *len);
	cls[*len] = '\0';
	return fnmatch(cls, one, 0) == 0;
}

/* Glob with Go filepath.Match rules plus "**" spanning directories. */
static bool glob(const char *p, const char *s)
{
	size_t n;

	for (;;) {
		if (*p == '\0')
			return *s == '\0';
		if (p[0] == '*' && p[1] == '*') {
			p += 2;
			if (*p == '/' && glob(p + 1, s))
				return true;
			for (;; s++) {
				if (glob(p, s))
					return true;
				if (*s == '\0')
					return false;
			}
		}
		if (*p == '*') {
			for (p++;; s++) {
				if (glob(p, s))
					return true;
				if (*s == '\0' || *s == '/')
					return false;
			}
		}
		if (*s == '\0' || (*s == '/' && *p != '/'))
			return false;
		if (*p == '?') {
			p++, s++;
			continue;
		}
		if (*p == '[') {
			if (!class_match(p, *s, &n))
				return false;
			p += n, s++;
			continue;
		}
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (*p++ != *s++)
			return false;
	}
}

/* A pattern matches the path itself or one of its parent directories. */
static bool pattern_match(const char *pat, const char *path)
{
	char *tmp, *slash;
	bool hit;

	if (glob(pat, path))
		return true;
	tmp = xstrdup(path);
	hit = false;
	while (!hit && (slash = strrchr(tmp, '/')) != NULL) {
		*slash = '\0';
		hit = glob(pat, tmp);
	}
	free(tmp);
	return hit;
}

bool docker_ignore_match(char *const *patterns, const char *relpath)
{
	bool excluded = false;

	for (size_t i = 0; patterns && patterns[i]; i++) {
		const char *p = patterns[i];
		bool neg = p[0] == '!';

		if (pattern_match(neg ? p + 1 : p, relpath))
			excluded = !neg;
	}
	return excluded;
}

/* Clean one .dockerignore line: trim, drop comments, leading "/", "./"
 * and trailing "/"; NULL when nothing is left. */
static char *ignore_clean(char *line)
{
	bool neg;
	size_t n;

	line[strcspn(line, "\r")] = '\0';
	line += strspn(line, " \t");
	if (line[0] == '#')
		return NULL;
	n = strlen(line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' ||
	                 (line[n - 1] == '/' && n > 1)))
		line[--n] = '\0';
	neg = line[0] == '!';
	line += neg;
	line += strspn(line, " \t");
	while (line[0] == '/' || (line[0] == '.' && line[1] == '/'))
		line += line[0] == '/' ? 1 : 2;
	if (line[0] == '\0' || strcmp(line, ".") == 0)
		return NULL;
	return neg ? xasprintf("!%s", line) : xstrdup(line);
}

int docker_ignore_load(const char *dir, char ***out, struct err *e)
{
	char *text = NULL, *line;
	char *save = NULL, **v = xcalloc(1, sizeof(*v));
	size_t n = 0, len;
	int r;

	/* beneath the context, a regular file (jobfile.h) */
	r = jobfile_read(NULL, dir, ".dockerignore", IGNORE_MAX, &text, &len,
	                 e);
	if (r == TERR_NOTFOUND) {
		err_clear(e);
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *p = ignore_clean(line);

		if (p == NULL)
			continue;
		v = realloc(v, (n + 2) * sizeof(*v));
		if (v == NULL)
			abort();
		v[n++] = p;
		v[n] = NULL;
	}
out:
	free(text);
	*out = v;
	return r;
}

static int ctx_write_data(struct ctx *c, int fd, struct sha256_ctx *h,
                          const char *rel)
{
	ssize_t n;

	while ((n = read(fd, c->chunk, CHUNK)) > 0) {
		sha256_update(h, c->chunk, (size_t)n);
		if (c->a && archive_write_data(c->a, c->chunk, (size_t)n) < 0)
			return err_set(c->e, TERR_IO, "build context %s: %s",
			               rel, archive_error_string(c->a));
	}
	if (n < 0)
		return err_sys(c->e, TERR_IO, "build context: read %s", rel);
	return 0;
}

/* Add one entry (file, dir or symlink) to the tar and to the key. */
static int ctx_add(struct ctx *c, int dirfd, const char *name, const char *rel,
                   const struct stat *st)
{
	struct archive_entry *ae = archive_entry_new();
	struct sha256_ctx *h = sha256_new();
	char hex[SHA256_HEX_LEN + 1], link[4096] = "", *line;
	int fd = -1, r = 0;
	struct stat now;
	ssize_t n;

	archive_entry_set_pathname(ae, rel);
	archive_entry_copy_stat(ae, st);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	if (S_ISLNK(st->st_mode)) {
		n = readlinkat(dirfd, name, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		archive_entry_set_symlink(ae, link);
		sha256_update(h, link, strlen(link));
	}
	/* no blocking open of a FIFO swapped in since the lstat, and still
	 * the regular file of the size the header gives */
	if (S_ISREG(st->st_mode) &&
	    (fd = openat(dirfd, name,
	                 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
		r = err_sys(c->e, TERR_IO, "build context: open %s", rel);
		goto out;
	}
	if (fd >= 0 && (fstat(fd, &now) < 0 || !S_ISREG(now.st_mode) ||
	                now.st_ino != st->st_ino)) {
		r = err_set(c->e, TERR_IO, "build context: %s changed", rel);
		goto out;
	}
	if (c->a && archive_write_header(c->a, ae) != ARCHIVE_OK) {
		r = err_set(c->e, TERR_IO, "build context %s: %s", rel,
		            archive_error_string(c->a));
		goto out;
	}
	if (fd >= 0 && (r = ctx_write_data(c, fd, h, rel)) < 0)
		goto out;
out:
	sha256_final(h, hex);
	line = xasprintf("%o %s\n", (unsigned)st->st_mode, hex);
	if (c->key != NULL) {
		sha256_update(c->key, rel, strlen(rel) + 1);
		sha256_update(c->key, line, strlen(line));
	}
	free(line);
	if (fd >= 0)
		close(fd);
	archive_entry_free(ae);
	return r;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in a directory (without . and ..). */
static int list_dir(int fd, char ***out, size_t *count, struct err *e)
{
	DIR *d = fdopendir(dup(fd));
	struct dirent *de;
	char **v = NULL;
	size_t n = 0;

	if (d == NULL)
		return err_sys(e, TERR_IO, "build context: opendir");
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((v = realloc(v, (n + 1) * sizeof(*v))) == NULL)
			abort();
		v[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), entry_cmp);
	*out = v;
	*count = n;
	return 0;
}

static int ctx_walk(struct ctx *c, int dirfd, const char *prefix, int depth);

static int ctx_one(struct ctx *c, int dirfd, const char *name, const char *rel,
                   int depth)
{
	struct stat st;
	bool ign, keep;
	int sub, r = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return err_sys(c->e, TERR_IO, "build context: stat %s", rel);
	keep = !strcmp(rel, ".dockerignore") || !strcmp(rel, c->dockerfile);
	ign = !keep && docker_ignore_match(c->patterns, rel);
	if (S_ISDIR(st.st_mode)) {
		if (ign && !c->has_exceptions)
			return 0;
		if (!ign && (r = ctx_add(c, dirfd, name, rel, &st)) < 0)
			return r;
		sub = openat(dirfd, name,
		             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return err_sys(c->e, TERR_IO, "build context: %s", rel);
		r = ctx_walk(c, sub, rel, depth + 1);
		close(sub);
		return r;
	}
	if (ign || !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
		return 0;
	return ctx_add(c, dirfd, name, rel, &st);
}

static int ctx_walk(struct ctx *c, int dirfd, const char *prefix, int depth)
{
	char **names = NULL, *rel;
	size_t n = 0, i;
	int r;

	if (depth > CTX_DEPTH)
		return err_set(c->e, TERR_TOOBIG,
		               "build context: deeper than "
		               "%d directories at %s",
		               CTX_DEPTH, prefix);
	if ((r = list_dir(dirfd, &names, &n, c->e)) < 0)
		return r;
	for (i = 0; i < n && r == 0; i++) {
		if (depth == 0 && strcmp(names[i], ".git") == 0)
			continue; /* never part of an image */
		rel = prefix ? xasprintf("%s/%s", prefix, names[i])
		             : xstrdup(names[i]);
		r = ctx_one(c, dirfd, names[i], rel, depth);
		free(rel);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int docker_context_tar(const char *dir, const char *dockerfile, FILE *f,
                       struct sha256_ctx *key, struct err *e)
{
	struct ctx *c = xcalloc(1, sizeof(*c));
	int r;

	c->e = e;
	c->key = key;
	c->dockerfile = dockerfile ? dockerfile : "Dockerfile";
	c->root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->root_fd < 0) {
		r = err_sys(e, TERR_IO, "build context %s", dir);
		goto out;
	}
	if ((r = docker_ignore_load(dir, &c->patterns, e)) < 0)
		goto out;
	for (size_t i = 0; c->patterns[i]; i++)
		c->has_exceptions |= c->patterns[i][0] == '!';
	if (f != NULL) {
		c->a = archive_write_new();
		archive_write_set_format_pax_restricted(c->a);
		if (archive_write_open_FILE(c->a, f) != ARCHIVE_OK) {
			r = err_set(e, TERR_IO, "build context: %s",
			            archive_error_string(c->a));
			goto out;
		}
	}
	if ((r = ctx_walk(c, c->root_fd, NULL, 0)) < 0)
		goto out;
	if (c->a && archive_write_close(c->a) != ARCHIVE_OK)
		r = err_set(e, TERR_IO, "build context: %s",
		            archive_error_string(c->a));
out:
	if (c->a)
		archive_write_free(c->a);
	if (c->root_fd >= 0)
		close(c->root_fd);
	runner_strv_free(c->patterns);
	free(c);
	return r;
}
