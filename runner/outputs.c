/* outputs.c: walk $TETHER_OUTPUTS safely (see outputs.h). */
#include "runner/outputs.h"
#include "common/err.h"
#include "common/jobspec.h"
#include "common/sha256.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct walk {
	json_t *files, *refused;
	size_t count;
};

static void refuse(struct walk *w, const char *path, const char *why)
{
	json_array_append_new(
	    w->refused, json_pack("{s:s, s:s}", "path", path, "why", why));
}

/* True when a relative symlink target, seen from directory rel (relative
 * to the outputs root), stays inside the root. */
static bool link_stays_inside(const char *rel_dir, const char *target)
{
	int depth = 0;
	char *copy, *save = NULL, *tok;

	if (target[0] == '/')
		return false;
	for (const char *p = rel_dir; *p != '\0'; p++)
		if (p == rel_dir || p[-1] == '/')
			depth++;
	copy = xstrdup(target);
	for (tok = strtok_r(copy, "/", &save); tok != NULL;
	     tok = strtok_r(NULL, "/", &save)) {
		if (strcmp(tok, "..") == 0)
			depth--;
		else if (strcmp(tok, ".") != 0)
			depth++;
		if (depth < 0)
			break;
	}
	free(copy);
	return depth >= 0;
}

static void refuse_link(struct walk *w, int dfd, const char *name,
                        const char *rel_dir, const char *path)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);

	if (n < 0) {
		refuse(w, path, "symlink (unreadable)");
		return;
	}
	target[n] = '\0';
	if (link_stays_inside(rel_dir, target))
		refuse(w, path, "symlink (not followed)");
	else
		refuse(w, path, "symlink points outside the outputs directory");
}

static int add_file(struct walk *w, int dfd, const char *name, const char *path,
                    struct err *e)
{
	char hex[SHA256_HEX_LEN + 1], buf[65536];
	struct sha256_ctx *c;
	int64_t size = 0;
	ssize_t n;
	int fd;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		refuse(w, path, "cannot open");
		return 0;
	}
	c = sha256_new();
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		sha256_update(c, buf, (size_t)n);
		size += n;
	}
	sha256_final(c, hex);
	close(fd);
	if (n < 0)
		return err_sys(e, TERR_IO, "read output %s", path);
	json_array_append_new(w->files,
	                      json_pack("{s:s, s:I, s:s}", "path", path, "size",
	                                (json_int_t)size, "sha256", hex));
	return 0;
}

static int walk_dir(struct walk *w, int dfd, const char *rel, int depth,
                    struct err *e);

static int walk_entry(struct walk *w, int dfd, const char *rel,
                      const char *name, int depth, struct err *e)
{
	char *path = rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
	struct stat st;
	int r = 0, sub;

	if (++w->count > OUTPUTS_MAX_FILES) {
		r = err_set(e, TERR_TOOBIG, "more than %d entries in outputs",
		            OUTPUTS_MAX_FILES);
	} else if (!path_is_safe_relative(path)) {
		refuse(w, path, "unsafe name");
	} else if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		refuse(w, path, "cannot stat");
	} else if (S_ISLNK(st.st_mode)) {
		refuse_link(w, dfd, name, rel, path);
	} else if (S_ISREG(st.st_mode)) {
		r = add_file(w, dfd, name, path, e);
	} else if (!S_ISDIR(st.st_mode)) {
		refuse(w, path, "not a regular file");
	} else if (depth >= OUTPUTS_MAX_DEPTH) {
		refuse(w, path, "too deep");
	} else if ((sub = openat(dfd, name,
	                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	                             O_CLOEXEC)) < 0) {
		refuse(w, path, "cannot open directory");
	} else {
		r = walk_dir(w, sub, path, depth + 1, e); /* closes sub */
	}
	free(path);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk one directory (takes ownership of dfd), entries sorted by name. */
static int walk_dir(struct walk *w, int dfd, const char *rel, int depth,
                    struct err *e)
{
	DIR *d = fdopendir(dfd);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int r = 0;

	if (d == NULL) {
		close(dfd);
		return err_sys(e, TERR_IO, "outputs: open %s", rel);
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(char *));
			if (names == NULL)
				abort();
		}
		names[n++] = xstrdup(de->d_name);
	}
	if (n > 0)
		qsort(names, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (r == 0)
			r = walk_entry(w, dirfd(d), rel, names[i], depth, e);
		free(names[i]);
	}
	free(names);
	closedir(d);
	return r;
}

int outputs_list(const char *dir, json_t **files, json_t **refused,
                 struct err *e)
{
	struct walk w = {json_array(), json_array(), 0};
	int dfd, r;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		r = errno == ENOENT ? 0 : err_sys(e, TERR_IO, "open %s", dir);
		goto out;
	}
	r = walk_dir(&w, dfd, "", 0, e);
out:
	if (r < 0) {
		json_decref(w.files);
		json_decref(w.refused);
		return r;
	}
	*files = w.files;
	*refused = w.refused;
	return 0;
}
