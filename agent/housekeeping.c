/* housekeeping.c: remove finished attempt directories after
 * attempt_retention, or oldest first while they use more than
 * attempt_disk_budget (never one that is still queued, running or
 * finishing: only rows in state done qualify).  An attempt that is done,
 * and a state dir that runs short of space, bring the next run forward to
 * within a second, so that retention cannot fill the disk between runs. */
#include "agent/agent.h"
#include "agent/db.h"

#include "common/cmdrun.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t hk_total;

static int hk_add(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
	if (flag == FTW_F)
		hk_total += (int64_t)sb->st_blocks * 512;
	return 0;
}

/* Disk use of a directory tree (blocks, not following symlinks). */
static int64_t hk_du(const char *dir)
{
	hk_total = 0;
	nftw(dir, hk_add, 16, FTW_PHYS);
	return hk_total;
}

/* The slurm launcher's staging directory of the attempt, when its runner
 * left one (docs/slurm.md): <slurm_shared_dir or <state_dir>-slurm>/<job>/
 * <attempt>.  rm -rf: it does not follow a link the job user planted. */
static void housekeeping_stage(struct agent *a, const char *job,
                               int64_t attempt)
{
	const char *sd = a->conf.state_dir;
	size_t n = strlen(sd);
	char *root, *dir, *parent;
	const char *argv[] = {"rm", "-rf", "--one-file-system",
	                      "--", NULL,  NULL};
	struct err e = {0};
	struct stat st;
	int status = 0;

	while (n > 1 && sd[n - 1] == '/')
		n--;
	root = a->conf.slurm_shared_dir && *a->conf.slurm_shared_dir
	           ? xstrdup(a->conf.slurm_shared_dir)
	           : xasprintf("%.*s-slurm", (int)n, sd);
	dir = xasprintf("%s/%s/%lld", root, job, (long long)attempt);
	parent = xasprintf("%s/%s", root, job);
	argv[4] = dir;
	if (lstat(dir, &st) == 0) {
		if (cmd_capture(argv, NULL, NULL, 60000, &status, &e) < 0 ||
		    status != 0)
			log_warn("job=%s attempt=%lld: rm -rf %s failed%s%s",
			         job, (long long)attempt, dir,
			         e.msg[0] ? ": " : "", e.msg);
		rmdir(parent); /* only when no other attempt is left */
	}
	free(root);
	free(dir);
	free(parent);
}

static void housekeeping_remove(struct agent *a, const char *job,
                                int64_t attempt)
{
	char *dir = xasprintf("%s/jobs/%s/%lld", a->conf.state_dir, job,
	                      (long long)attempt);
	char *parent = xasprintf("%s/jobs/%s", a->conf.state_dir, job);
	struct err e = {0};
	sqlite3_stmt *st;

	housekeeping_stage(a, job, attempt); /* before: gone means all gone */
	if (rm_rf(dir, &e) < 0) {
		log_warn("%s", e.msg);
		goto out;
	}
	rmdir(parent); /* only when no other attempt is left */
	if (db_prepare(a->db,
	               "UPDATE attempts SET dir_removed = 1 WHERE job = ? AND "
	               "attempt = ?",
	               &st, &e) == 0) {
		sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, attempt);
		db_step_done(a->db, st, &e);
	}
	log_info("job=%s attempt=%lld directory removed (retention)", job,
	         (long long)attempt);
out:
	free(dir);
	free(parent);
}

/* Over the budget: remove finished attempts, oldest first. */
static void housekeeping_budget(struct agent *a)
{
	int64_t total = 0, n = 0, i = 0, *sizes, budget = 0;
	char **jobs;
	int64_t *atts;
	sqlite3_stmt *st;
	struct err e = {0};

	agent_conf_disk(a->conf.attempt_disk_budget, a->conf.state_dir,
	                "attempt_disk_budget", &budget, &e);
	if (budget <= 0 ||
	    db_prepare(a->db,
	               "SELECT job, attempt FROM attempts WHERE state = 'done' "
	               "AND dir_removed = 0 ORDER BY ended_at LIMIT 10000",
	               &st, &e) < 0)
		return;
	jobs = xcalloc(10000, sizeof(*jobs));
	atts = xcalloc(10000, sizeof(*atts));
	sizes = xcalloc(10000, sizeof(*sizes));
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *dir;
		jobs[n] = xstrdup((const char *)sqlite3_column_text(st, 0));
		atts[n] = sqlite3_column_int64(st, 1);
		dir = xasprintf("%s/jobs/%s/%lld", a->conf.state_dir, jobs[n],
		                (long long)atts[n]);
		sizes[n] = hk_du(dir);
		total += sizes[n++];
		free(dir);
	}
	sqlite3_finalize(st);
	for (i = 0; i < n && total > budget; i++) {
		housekeeping_remove(a, jobs[i], atts[i]);
		total -= sizes[i];
	}
	for (i = 0; i < n; i++)
		free(jobs[i]);
	free(jobs);
	free(atts);
	free(sizes);
}

/* When the housekeeping brought forward by housekeeping_soon runs. */
static int64_t hk_soon_due;

void housekeeping_soon(struct agent *a)
{
	int64_t now = now_mono_ms();

	if (a->hk_timer == NULL || now < hk_soon_due)
		return; /* not the daemon, or already due within a second */
	hk_soon_due = now + 1000;
	loop_timer_set(a->hk_timer, 1000);
}

void housekeeping_run(void *arg)
{
	struct agent *a = arg;
	double cutoff =
	    (double)(now_wall_ms() - a->conf.attempt_retention_ms) / 1000.0;
	sqlite3_stmt *st;
	struct err e = {0};

	if (db_prepare(a->db,
	               "SELECT job, attempt FROM attempts WHERE state = 'done' "
	               "AND dir_removed = 0 AND ended_at < ?",
	               &st, &e) == 0) {
		sqlite3_bind_double(st, 1, cutoff);
		while (sqlite3_step(st) == SQLITE_ROW)
			housekeeping_remove(
			    a, (const char *)sqlite3_column_text(st, 0),
			    sqlite3_column_int64(st, 1));
		sqlite3_finalize(st);
	}
	housekeeping_budget(a);
	loop_timer_set(a->hk_timer, a->conf.housekeeping_ms);
}
