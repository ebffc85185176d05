/* tarpack.c: see tarpack.h. */
#include "runner/tarpack.h"

#include "common/err.h"

#include <archive.h>
#include <archive_entry.h>
#include <string.h>

static int copy_data(struct archive *in, struct archive *out, struct err *e)
{
	char buf[65536];
	la_ssize_t n;

	while ((n = archive_read_data(in, buf, sizeof(buf))) > 0)
		if (archive_write_data(out, buf, (size_t)n) != n)
			return err_set(e, TERR_IO, "write archive: %s",
			               archive_error_string(out));
	if (n < 0)
		return err_set(e, TERR_IO, "read: %s",
		               archive_error_string(in));
	return 0;
}

/* One entry of the walk: the root itself and other kinds are skipped. */
static int pack_entry(struct archive *in, struct archive *out,
                      struct archive_entry *ent, const char *dir,
                      bool root_owned, int64_t *files, struct err *e)
{
	const char *p = archive_entry_pathname(ent);
	mode_t t = archive_entry_filetype(ent);
	size_t dlen = strlen(dir);

	if (strncmp(p, dir, dlen) != 0 || p[dlen] != '/')
		return 0; /* the root */
	if (t != AE_IFREG && t != AE_IFDIR && t != AE_IFLNK)
		return 0;
	archive_entry_copy_pathname(ent, p + dlen + 1);
	if (root_owned) {
		archive_entry_set_uid(ent, 0);
		archive_entry_set_gid(ent, 0);
		archive_entry_copy_uname(ent, NULL);
		archive_entry_copy_gname(ent, NULL);
	}
	if (archive_write_header(out, ent) != ARCHIVE_OK)
		return err_set(e, TERR_IO, "write archive: %s",
		               archive_error_string(out));
	if (t != AE_IFREG)
		return 0;
	(*files)++;
	return copy_data(in, out, e);
}

int tarpack_tree(const char *dir, const char *path, bool root_owned,
                 int64_t *files, struct err *e)
{
	struct archive *in = archive_read_disk_new();
	struct archive *out = archive_write_new();
	struct archive_entry *ent;
	int rc = 0, ar;

	archive_read_disk_set_symlink_physical(in);
	archive_read_disk_set_behavior(in, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
	archive_write_add_filter_gzip(out);
	archive_write_set_format_pax_restricted(out);
	if (archive_write_open_filename(out, path) != ARCHIVE_OK ||
	    archive_read_disk_open(in, dir) != ARCHIVE_OK) {
		rc = err_set(e, TERR_IO, "open: %s / %s",
		             archive_error_string(out),
		             archive_error_string(in));
		goto out;
	}
	while (rc == 0) {
		ent = archive_entry_new();
		ar = archive_read_next_header2(in, ent);
		if (ar == ARCHIVE_EOF) {
			archive_entry_free(ent);
			break;
		}
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			rc = err_set(e, TERR_IO, "walk %s: %s", dir,
			             archive_error_string(in));
			archive_entry_free(ent);
			break;
		}
		archive_read_disk_descend(in);
		rc = pack_entry(in, out, ent, dir, root_owned, files, e);
		archive_entry_free(ent);
	}
	if (rc == 0 && archive_write_close(out) != ARCHIVE_OK)
		rc = err_set(e, TERR_IO, "finish archive: %s",
		             archive_error_string(out));
out:
	archive_read_free(in);
	archive_write_free(out);
	return rc;
}
