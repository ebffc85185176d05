/* supervisor-resume.c: a requeued attempt's checkpoint.  The agent
 * downloads the job's last checkpoint as checkpoint.tar.gz into the
 * attempt directory (docs/state-dir.md); the runner extracts it into
 * checkpoints/ (/tether/checkpoints), hands it to the job user and sets
 * TETHER_RESUME=1 in the job's environment (docs/checkpointing.md). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "common/attempt.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/source/source.h"
#include "runner/supervisor/supervisor.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESUME_ARCHIVE     "checkpoint.tar.gz"
#define RESUME_MAX_ENTRIES 1000000
#define RESUME_MAX_BYTES   (1LL << 40)

static uid_t resume_uid;
static gid_t resume_gid;

static int resume_chown_one(const char *path, const struct stat *sb, int flag,
                            struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (lchown(path, resume_uid, resume_gid) < 0)
		log_warn_errno("lchown %s", path);
	return 0;
}

int supervisor_resume(struct runner *r, struct err *e)
{
	char *path = xasprintf("%s/%s", r->dir, RESUME_ARCHIVE);
	struct snapshot_limits lim = {RESUME_MAX_ENTRIES, RESUME_MAX_BYTES};
	struct err xe = {0};
	struct stat sb;
	int rc = 0;

	if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
		goto out; /* nothing to resume from: a fresh start */
	if (snapshot_extract(path, r->checkpoints_dir, &lim, &xe) < 0) {
		runner_logf(r, "tether",
		            "checkpoint not restored (the job starts from "
		            "scratch): %s",
		            xe.msg);
		goto out;
	}
	resume_uid = r->uid;
	resume_gid = r->gid;
	if (nftw(r->checkpoints_dir, resume_chown_one, 16, FTW_PHYS) < 0) {
		rc = err_sys(e, TERR_IO, "chown %s", r->checkpoints_dir);
		goto out;
	}
	r->resumed = true;
	runner_logf(r, "tether",
	            "checkpoint restored into /tether/checkpoints (%lld "
	            "bytes); TETHER_RESUME=1",
	            (long long)sb.st_size);
out:
	free(path);
	return rc;
}
