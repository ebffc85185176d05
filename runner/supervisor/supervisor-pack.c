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
#include "runner/tarpack.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PACK_OUT  "checkpoint-out.tar.gz" /* temp: PACK_OUT.<pid>.part */
#define PACK_JSON "checkpoint-out.json"

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
	rc = tarpack_tree(".", part, false, &files, e);
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
