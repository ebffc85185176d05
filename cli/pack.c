/* pack.c: a directory as a gzip'd tar (libarchive) for `tether submit
 * --dir`: regular files, directories and symlinks (stored as links, never
 * followed), minus what .gitignore / .tetherignore leave out, with a cap
 * on the bytes read.
 *
 * The archive depends only on the names, types, permission bits, link
 * targets and contents: names in byte order, one fixed mtime, owner root,
 * no gzip timestamp.  So the same tree packs to the same bytes, and the
 * snapshot id (their sha256) is the same for every upload of it. */
#include "cli/cli.h"
#include "common/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The mtime of every entry: 2000-01-01T00:00:00Z (not 0: zip and other
 * formats a job may use refuse dates before 1980). */
#define PACK_MTIME 946684800

struct pack {
	struct archive *a;
	struct ignore *ig;
	const char *root;
	int64_t total, max;
	struct err *e;
};

static int add_data(struct pack *p, const char *full, struct archive_entry *en)
{
	char buf[65536];
	ssize_t n;
	int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return err_sys(p->e, TERR_IO, "open %s", full);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		p->total += n;
		if (p->total > p->max) {
			close(fd);
			return err_set(p->e, TERR_TOOBIG,
			               "%s: more than %lld bytes to upload; "
			               "leave files out with .tetherignore",
			               p->root, (long long)p->max);
		}
		if (archive_write_data(p->a, buf, (size_t)n) < 0) {
			close(fd);
			return err_set(p->e, TERR_IO, "tar: %s",
			               archive_error_string(p->a));
		}
	}
	close(fd);
	(void)en;
	return n < 0 ? err_sys(p->e, TERR_IO, "read %s", full) : 0;
}

static int add_entry(struct pack *p, const char *rel, const char *full,
                     const struct stat *sb)
{
	struct archive_entry *en = archive_entry_new();
	char target[4096];
	ssize_t tl;
	int r = 0;

	archive_entry_copy_pathname(en, rel);
	archive_entry_set_filetype(en, sb->st_mode & S_IFMT);
	archive_entry_set_perm(en, sb->st_mode & 07777);
	archive_entry_set_size(en, S_ISREG(sb->st_mode) ? sb->st_size : 0);
	archive_entry_set_mtime(en, PACK_MTIME, 0);
	archive_entry_set_uid(en, 0);
	archive_entry_set_gid(en, 0);
	archive_entry_set_uname(en, "");
	archive_entry_set_gname(en, "");
	if (S_ISLNK(sb->st_mode)) {
		tl = readlink(full, target, sizeof(target) - 1);
		if (tl < 0) {
			archive_entry_free(en);
			return err_sys(p->e, TERR_IO, "readlink %s", full);
		}
		target[tl] = '\0';
		archive_entry_copy_symlink(en, target);
	}
	if (archive_write_header(p->a, en) != ARCHIVE_OK)
		r = err_set(p->e, TERR_IO, "tar %s: %s", rel,
		            archive_error_string(p->a));
	else if (S_ISREG(sb->st_mode))
		r = add_data(p, full, en);
	archive_entry_free(en);
	return r;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int no_dots(const struct dirent *de)
{
	return strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
}

static int walk(struct pack *p, const char *rel)
{
	char *dir =
	    rel[0] ? xasprintf("%s/%s", p->root, rel) : xstrdup(p->root);
	struct dirent **names = NULL;
	int n = scandir(dir, &names, no_dots, name_cmp), r = 0;

	if (n < 0) {
		r = err_sys(p->e, TERR_IO, "open directory %s", dir);
		free(dir);
		return r;
	}
	for (int i = 0; r == 0 && i < n; i++) {
		const char *name = names[i]->d_name;
		char *crel, *full;
		struct stat sb;
		crel = rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
		full = xasprintf("%s/%s", dir, name);
		if (lstat(full, &sb) < 0)
			r = err_sys(p->e, TERR_IO, "stat %s", full);
		else if (ignore_match(p->ig, crel, S_ISDIR(sb.st_mode)))
			;
		else if (S_ISDIR(sb.st_mode)) {
			if ((r = add_entry(p, crel, full, &sb)) == 0)
				r = walk(p, crel);
		} else if (S_ISREG(sb.st_mode) || S_ISLNK(sb.st_mode))
			r = add_entry(p, crel, full, &sb);
		free(crel);
		free(full);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(dir);
	return r;
}

int pack_dir(const char *dir, const char *out_path, int64_t max_bytes,
             struct err *e)
{
	struct pack p = {.root = dir, .max = max_bytes, .e = e};
	int r;

	p.a = archive_write_new();
	p.ig = ignore_load(dir);
	if (archive_write_add_filter_gzip(p.a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(p.a, "gzip", "timestamp", NULL) !=
	        ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(p.a) != ARCHIVE_OK ||
	    archive_write_open_filename(p.a, out_path) != ARCHIVE_OK) {
		r = err_set(e, TERR_IO, "create %s: %s", out_path,
		            archive_error_string(p.a));
		goto out;
	}
	r = walk(&p, "");
	if (archive_write_close(p.a) != ARCHIVE_OK && r == 0)
		r = err_set(e, TERR_IO, "write %s: %s", out_path,
		            archive_error_string(p.a));
out:
	archive_write_free(p.a);
	ignore_free(p.ig);
	return r;
}
