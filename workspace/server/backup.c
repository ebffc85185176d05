/* backup.c: `tether-workspace backup --dir D TARGET`: a copy of a workspace
 * that may be serving, without stopping it.  The database goes first,
 * through SQLite's online backup (a consistent snapshot; writers are not
 * held up for longer than one step of pages), then the log files and the
 * blobs: each log file then holds at least the length the snapshot
 * acknowledges (bytes past it are cut at the next append, never read),
 * and every blob the snapshot names is there (blobs are content-addressed
 * and never change); metrics.db (the metric points) is copied like the
 * database.  The settings, admin token and TLS pair are copied
 * as they are.  TARGET is itself a workspace directory: restore by
 * stopping the workspace and serving TARGET, or copying it back
 * (docs/workspace.md). */
#include "workspace/server/ws.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copy one regular file (mode kept), fsynced. */
static int copy_file(const char *from, const char *to, struct err *e)
{
	char buf[1 << 16];
	struct stat sb;
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = 0;
	ssize_t n;

	if (in < 0)
		return errno == ENOENT ? 0 /* gone meanwhile (retention) */
		                       : err_set(e, TERR_IO, "open %s: %s",
		                                 from, strerror(errno));
	if (fstat(in, &sb) < 0 ||
	    (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	                sb.st_mode & 07777)) < 0) {
		r = err_set(e, TERR_IO, "create %s: %s", to, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_set(e, TERR_IO, "read %s: %s", from,
			            strerror(errno));
			goto out;
		}
		if ((r = fd_write_all(out, buf, (size_t)n, e)) < 0)
			goto out;
	}
	if (fsync(out) < 0)
		r = err_set(e, TERR_IO, "fsync %s: %s", to, strerror(errno));
out:
	close(in);
	if (out >= 0)
		close(out);
	return r;
}

/* Copy a directory tree of regular files (symlinks and others skipped). */
static int copy_tree(const char *from, const char *to, struct err *e)
{
	DIR *d = opendir(from);
	struct dirent *de;
	int r = 0;

	if (d == NULL)
		return errno == ENOENT ? 0
		                       : err_set(e, TERR_IO, "open %s: %s",
		                                 from, strerror(errno));
	if ((r = mkdir_p(to, 0700, e)) < 0) {
		closedir(d);
		return r;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		char *f, *t;
		struct stat sb;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		f = xasprintf("%s/%s", from, de->d_name);
		t = xasprintf("%s/%s", to, de->d_name);
		if (lstat(f, &sb) == 0 && S_ISDIR(sb.st_mode))
			r = copy_tree(f, t, e);
		else if (lstat(f, &sb) == 0 && S_ISREG(sb.st_mode))
			r = copy_file(f, t, e);
		free(f);
		free(t);
	}
	closedir(d);
	if (r == 0)
		r = dir_fsync(to, e);
	return r;
}

static int backup_db(const char *from, const char *to, struct err *e)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	int rc = SQLITE_OK, r = 0;

	if (sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL) !=
	        SQLITE_OK ||
	    sqlite3_open_v2(to, &dst,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                    NULL) != SQLITE_OK) {
		r = err_set(e, TERR_IO, "open database %s or %s: %s", from, to,
		            sqlite3_errmsg(dst ? dst : src));
		goto out;
	}
	sqlite3_busy_timeout(src, 5000);
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (b == NULL) {
		r = err_set(e, TERR_IO, "backup %s: %s", from,
		            sqlite3_errmsg(dst));
		goto out;
	}
	/* All pages in one step: one read transaction, one consistent
	 * snapshot, and in WAL mode the server's writers go on meanwhile.
	 * (Steps of a few pages restart from the first page whenever the
	 * server writes in between, which a busy workspace does every
	 * second: such a backup need never end.)  Busy: a bounded wait. */
	for (int tries = 0;; tries++) {
		rc = sqlite3_backup_step(b, -1);
		if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= 200)
			break;
		sqlite3_sleep(50);
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		r = err_set(e, TERR_IO, "backup %s: %s", from,
		            sqlite3_errstr(rc));
		goto out;
	}
	if (sqlite3_exec(dst, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) !=
	    SQLITE_OK)
		r = err_set(e, TERR_IO, "backup %s: %s", to,
		            sqlite3_errmsg(dst));
out:
	sqlite3_close(src);
	sqlite3_close(dst);
	return r;
}

int backup_run(const char *dir, const char *to, struct err *e)
{
	static const char *const files[] = {"workspace.conf", "admin.token",
	                                    "tls.crt", "tls.key", NULL};
	struct ws ws = {0};
	char *db = NULL, *dbname = NULL, *dst = NULL, *f, *t;
	DIR *d;
	int r;

	if ((r = config_load(&ws, dir, e)) < 0)
		goto out;
	if ((d = opendir(to)) != NULL) {
		struct dirent *de;
		bool empty = true;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				empty = false;
		closedir(d);
		if (!empty) {
			r = err_set(e, TERR_CONFLICT,
			            "%s is not empty: back up into a new "
			            "directory",
			            to);
			goto out;
		}
	}
	if ((r = mkdir_p(to, 0700, e)) < 0)
		goto out;
	db = config_path(&ws, ws.conf.db);
	dbname = xstrdup(db);
	dst = xasprintf("%s/%s", to, basename(dbname));
	if ((r = backup_db(db, dst, e)) < 0)
		goto out;
	/* the metric points' own store (store-metrics.c), when it exists */
	f = xasprintf("%s/metrics.db", dir);
	t = xasprintf("%s/metrics.db", to);
	if (access(f, F_OK) == 0)
		r = backup_db(f, t, e);
	free(f);
	free(t);
	for (int i = 0; r == 0 && files[i]; i++) {
		f = xasprintf("%s/%s", dir, files[i]);
		t = xasprintf("%s/%s", to, files[i]);
		r = copy_file(f, t, e);
		free(f);
		free(t);
	}
	for (int i = 0; r == 0 && i < 2; i++) {
		const char *sub = i == 0 ? "logs" : "blobs";
		f = xasprintf("%s/%s", dir, sub);
		t = xasprintf("%s/%s", to, sub);
		r = copy_tree(f, t, e);
		free(f);
		free(t);
	}
	if (r == 0)
		r = dir_fsync(to, e);
out:
	conf_free(ws_conf_table, &ws.conf);
	free(ws.dir);
	free(db);
	free(dbname);
	free(dst);
	return r;
}
