/* supervisor-pack.c: `tether-runner pack-checkpoint DIR`: pack an ended
 * attempt's checkpoints/ into checkpoint-out.<sha256>.tar.gz for the agent
 * to upload
 * (docs/checkpointing.md, docs/state-dir.md).
 *
 * The archive is built under a temp name, fsynced, hashed and renamed;
 * only then is checkpoint-out.json written (atomically) with its sha256
 * and size.  So a crash at any point leaves either no archive or a whole
 * one, never a half checkpoint to upload.  The walk never follows a
 * symlink (links are stored as links; the resume side refuses links that
 * lead out); only directories, regular files and symlinks are packed. */
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/supervisor/supervisor.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PACK_OUT  "checkpoint-out.tar.gz" /* temp: PACK_OUT.<pid>.part */
#define PACK_JSON "checkpoint-out.json"

static int pack_copy(struct archive *in, struct archive *out, struct err *e)
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

/* One entry of the walk; *count counts the packed files. */
static int pack_entry(struct archive *in, struct archive *out,
                      struct archive_entry *ent, int64_t *count, struct err *e)
{
	mode_t t = archive_entry_filetype(ent);
	const char *p = archive_entry_pathname(ent);

	if (strcmp(p, ".") == 0)
		return 0;
	if (t != AE_IFREG && t != AE_IFDIR && t != AE_IFLNK)
		return 0; /* no devices, fifos or sockets */
	if (strncmp(p, "./", 2) == 0)
		archive_entry_copy_pathname(ent, p + 2);
	if (archive_write_header(out, ent) != ARCHIVE_OK)
		return err_set(e, TERR_IO, "write archive: %s",
		               archive_error_string(out));
	if (t == AE_IFREG) {
		(*count)++;
		return pack_copy(in, out, e);
	}
	return 0;
}

/* Pack "." (the checkpoints dir, the working directory) into path. */
static int pack_tree(const char *path, int64_t *count, struct err *e)
{
	struct archive *in = archive_read_disk_new();
	struct archive *out = archive_write_new();
	struct archive_entry *ent;
	int rc = 0, ar;

	archive_read_disk_set_symlink_physical(in);
	archive_write_add_filter_gzip(out);
	archive_write_set_format_pax_restricted(out);
	if (archive_write_open_filename(out, path) != ARCHIVE_OK ||
	    archive_read_disk_open(in, ".") != ARCHIVE_OK) {
		rc = err_set(e, TERR_IO, "open: %s / %s",
		             archive_error_string(out),
		             archive_error_string(in));
		goto out;
	}
	for (;;) {
		ent = archive_entry_new();
		ar = archive_read_next_header2(in, ent);
		if (ar == ARCHIVE_EOF) {
			archive_entry_free(ent);
			break;
		}
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			rc = err_set(e, TERR_IO, "walk: %s",
			             archive_error_string(in));
			archive_entry_free(ent);
			goto out;
		}
		archive_read_disk_descend(in);
		rc = pack_entry(in, out, ent, count, e);
		archive_entry_free(ent);
		if (rc < 0)
			goto out;
	}
	if (archive_write_close(out) != ARCHIVE_OK)
		rc = err_set(e, TERR_IO, "finish archive: %s",
		             archive_error_string(out));
out:
	archive_read_free(in);
	archive_write_free(out);
	return rc;
}

static int pack_json(const char *dir, const char *state, const char *sha,
                     int64_t size, int64_t files, struct err *e)
{
	char *path = xasprintf("%s/%s", dir, PACK_JSON), *text;
	json_t *j =
	    json_pack("{s:s, s:s?, s:I, s:I}", "state", state, "sha256", sha,
	              "size", (json_int_t)size, "files", (json_int_t)files);
	int rc;

	text = json_dumps(j, JSON_COMPACT);
	rc = file_write_atomic(path, text, strlen(text), 0600, e);
	free(text);
	free(path);
	json_decref(j);
	return rc;
}

int supervisor_pack(const char *dir, struct err *e)
{
	char *ck = xasprintf("%s/checkpoints", dir);
	char *part = xasprintf("%s/%s.%d.part", dir, PACK_OUT, (int)getpid());
	char *final = NULL;
	char sha[SHA256_HEX_LEN + 1];
	int64_t files = 0, size = 0;
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd, rc;

	if (cwd < 0 || chdir(ck) < 0) {
		/* no checkpoints dir: nothing to upload */
		rc = pack_json(dir, "empty", NULL, 0, 0, e);
		goto out;
	}
	rc = pack_tree(part, &files, e);
	if (fchdir(cwd) < 0 && rc == 0)
		rc = err_sys(e, TERR_IO, "fchdir");
	if (rc < 0)
		goto out;
	if (files == 0) {
		unlink(part);
		rc = pack_json(dir, "empty", NULL, 0, 0, e);
		goto out;
	}
	if ((fd = open(part, O_RDONLY | O_CLOEXEC)) < 0 || fsync(fd) < 0) {
		rc = err_sys(e, TERR_IO, "fsync %s", part);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	if ((rc = sha256_file(part, sha, &size, e)) < 0)
		goto out;
	/* named by its content: a second packer never clobbers the file
	 * that a written checkpoint-out.json names */
	final = xasprintf("%s/checkpoint-out.%s.tar.gz", dir, sha);
	if (rename(part, final) < 0) {
		rc = err_sys(e, TERR_IO, "rename %s", part);
		goto out;
	}
	if ((rc = dir_fsync(dir, e)) < 0)
		goto out;
	rc = pack_json(dir, "built", sha, size, files, e);
out:
	if (rc < 0)
		unlink(part);
	if (cwd >= 0)
		close(cwd);
	free(ck);
	free(part);
	free(final);
	return rc;
}
