/* snapshot.c: extract a source snapshot (gzip tar) into the work directory,
 * refusing anything that could write outside it.
 *
 * Every entry is checked here before libarchive sees it (so the reason is
 * clear), and libarchive's secure flags check again while writing:
 * SECURE_NODOTDOT, SECURE_SYMLINKS, SECURE_NOABSOLUTEPATHS.  Links must
 * point inside the directory, device nodes and fifos are refused, and the
 * entry count and total size are capped.  On refusal the directory is
 * emptied, so a half-extracted hostile archive is never used. */
#include "runner/source/source.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_FLAGS                                                             \
	(ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |                         \
	 ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |   \
	 ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS)

struct snap {
	struct archive *in, *out;
	const struct snapshot_limits *lim;
	int64_t entries, bytes;
};

/* True when p (relative) has a ".." component or is absolute. */
static bool path_escapes(const char *p)
{
	const char *s = p;

	if (p[0] == '/')
		return true;
	while (*s) {
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return true;
		s += n;
		while (*s == '/')
			s++;
	}
	return false;
}

/* True when a symlink at entry path `path` with `target` stays inside,
 * resolved lexically (depth below the root), as if no component of it were
 * itself a symlink: `a/l -> ..` then `m -> a/l/..` passes and leads one
 * level above the work dir.  This check is hygiene, not the boundary:
 * root code opens job files only beneath the work dir without following
 * links (runner/jobfile.c), git checkouts may hold any symlink anyway,
 * and inside the sandbox such a link reaches only /tether. */
static bool link_stays_inside(const char *path, const char *target)
{
	int depth = 0;
	const char *s;

	if (target[0] == '/' || target[0] == '\0')
		return false;
	for (s = path; *s;) { /* depth of the link's directory */
		size_t n = strcspn(s, "/");
		bool last = s[n] == '\0';
		if (!last && !(n == 1 && s[0] == '.'))
			depth++;
		s += n;
		while (*s == '/')
			s++;
	}
	for (s = target; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (--depth < 0)
				return false;
		} else if (n > 0 && !(n == 1 && s[0] == '.')) {
			depth++;
		}
		s += n;
		while (*s == '/')
			s++;
	}
	return true;
}

/* Refuse an entry whose kind, path or link could reach outside. */
static int snap_check_entry(struct snap *s, struct archive_entry *ent,
                            struct err *e)
{
	const char *path = archive_entry_pathname(ent);
	const char *hl = archive_entry_hardlink(ent);
	const char *sl = archive_entry_symlink(ent);
	mode_t type = archive_entry_filetype(ent);

	if (path == NULL || path[0] == '\0')
		return err_set(e, TERR_INVAL, "entry %" PRId64 " has no name",
		               s->entries);
	if (path[0] == '/')
		return err_set(e, TERR_INVAL, "refusing '%s': absolute path",
		               path);
	if (path_escapes(path))
		return err_set(e, TERR_INVAL,
		               "refusing '%s': '..' leads outside the work "
		               "directory",
		               path);
	if (hl != NULL && (hl[0] == '/' || path_escapes(hl)))
		return err_set(e, TERR_INVAL,
		               "refusing '%s': hardlink to '%s' leads outside "
		               "the work directory",
		               path, hl);
	if (hl != NULL)
		return 0;
	if (type == AE_IFLNK && (sl == NULL || !link_stays_inside(path, sl)))
		return err_set(e, TERR_INVAL,
		               "refusing '%s': symlink to '%s' leads outside "
		               "the work directory",
		               path, sl ? sl : "");
	if (type == AE_IFCHR || type == AE_IFBLK)
		return err_set(
		    e, TERR_INVAL,
		    "refusing '%s': device node in a source snapshot", path);
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
		return err_set(e, TERR_INVAL,
		               "refusing '%s': not a file, directory or "
		               "symlink (fifo or socket)",
		               path);
	return 0;
}

static int snap_count(struct snap *s, struct archive_entry *ent, struct err *e)
{
	if (++s->entries > s->lim->max_entries)
		return err_set(e, TERR_TOOBIG,
		               "more than %" PRId64 " entries (the snapshot "
		               "entry limit, snapshot_max_entries)",
		               s->lim->max_entries);
	if (archive_entry_size_is_set(ent))
		s->bytes += archive_entry_size(ent);
	if (s->bytes > s->lim->max_bytes)
		return err_set(e, TERR_TOOBIG,
		               "more than %" PRId64 " bytes uncompressed (the "
		               "snapshot size limit, snapshot_max_bytes)",
		               s->lim->max_bytes);
	return 0;
}

/* Copy an entry's data block by block, counting what is really written. */
static int snap_copy_data(struct snap *s, const char *path, struct err *e)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int64_t written = 0;
	int rc;

	while ((rc = archive_read_data_block(s->in, &buf, &size, &off)) ==
	       ARCHIVE_OK) {
		written += (int64_t)size;
		if (written > s->lim->max_bytes)
			return err_set(e, TERR_TOOBIG,
			               "'%s': more data than declared", path);
		if (archive_write_data_block(s->out, buf, size, off) !=
		    ARCHIVE_OK)
			return err_set(e, TERR_IO, "write '%s': %s", path,
			               archive_error_string(s->out));
	}
	if (rc != ARCHIVE_EOF)
		return err_set(e, TERR_INVAL, "read '%s': %s", path,
		               archive_error_string(s->in));
	return 0;
}

static int snap_entry(struct snap *s, struct archive_entry *ent, struct err *e)
{
	const char *path = archive_entry_pathname(ent);
	int rc;

	if ((rc = snap_count(s, ent, e)) < 0 ||
	    (rc = snap_check_entry(s, ent, e)) < 0)
		return rc;
	archive_entry_set_perm(ent, archive_entry_perm(ent) & 0777);
	archive_entry_set_uid(ent, geteuid());
	archive_entry_set_gid(ent, getegid());
	if (archive_write_header(s->out, ent) != ARCHIVE_OK)
		return err_set(e, TERR_INVAL, "refusing '%s': %s", path,
		               archive_error_string(s->out));
	if (archive_entry_size(ent) > 0 &&
	    (rc = snap_copy_data(s, path, e)) < 0)
		return rc;
	if (archive_write_finish_entry(s->out) != ARCHIVE_OK)
		return err_set(e, TERR_IO, "'%s': %s", path,
		               archive_error_string(s->out));
	return 0;
}

static int snap_open(struct snap *s, const char *archive, struct err *e)
{
	s->in = archive_read_new();
	s->out = archive_write_disk_new();
	if (s->in == NULL || s->out == NULL)
		return err_set(e, TERR_NOMEM, "libarchive");
	archive_read_support_filter_gzip(s->in);
	archive_read_support_filter_none(s->in);
	archive_read_support_format_tar(s->in);
	archive_write_disk_set_options(s->out, SNAP_FLAGS);
	if (archive_read_open_filename(s->in, archive, 65536) != ARCHIVE_OK)
		return err_set(e, TERR_INVAL,
		               "%s: not a valid gzip tar archive: %s", archive,
		               archive_error_string(s->in));
	return 0;
}

/* Remove what an aborted extraction left in dir (but not dir). */
static void snap_empty_dir(const char *dir)
{
	char *tmp = xasprintf("%s.refused.%d", dir, (int)getpid());

	if (rename(dir, tmp) == 0) {
		rm_rf(tmp, NULL);
		mkdir(dir, 0755);
	}
	free(tmp);
}

static int snap_loop(struct snap *s, struct err *e)
{
	struct archive_entry *ent;
	int rc;

	for (;;) {
		rc = archive_read_next_header(s->in, &ent);
		if (rc == ARCHIVE_EOF)
			return 0;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
			return err_set(e, TERR_INVAL,
			               "not a valid gzip tar archive: %s",
			               archive_error_string(s->in));
		if ((rc = snap_entry(s, ent, e)) < 0)
			return rc;
	}
}

int snapshot_extract(const char *archive, const char *dir,
                     const struct snapshot_limits *lim, struct err *e)
{
	struct snap s = {.lim = lim};
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (cwd < 0)
		return err_sys(e, TERR_IO, "open current directory");
	if ((rc = snap_open(&s, archive, e)) < 0)
		goto out;
	/* libarchive resolves entry paths against the working directory. */
	if (chdir(dir) < 0) {
		rc = err_sys(e, TERR_IO, "chdir %s", dir);
		goto out;
	}
	rc = snap_loop(&s, e);
	if (rc == 0 && archive_write_close(s.out) != ARCHIVE_OK)
		rc = err_set(e, TERR_IO, "finish extraction: %s",
		             archive_error_string(s.out));
	if (fchdir(cwd) < 0 && rc == 0)
		rc = err_sys(e, TERR_IO, "fchdir");
out:
	if (s.in)
		archive_read_free(s.in);
	if (s.out)
		archive_write_free(s.out);
	close(cwd);
	if (rc < 0)
		snap_empty_dir(dir);
	return rc;
}
