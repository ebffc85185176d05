/* source.c: fetch a job's code into the attempt's work directory.
 *
 * Dispatches on spec.source: git (gitsrc.c), a snapshot the agent downloaded
 * into the attempt directory (snapshot.c), a local directory (copied here;
 * local submits only) or nothing (an empty work directory).  Afterwards the
 * work directory is handed to the job user. */
#include "runner/source/source.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/fence.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_MAX_DEPTH 256

const char *source_fenced(struct runner *r)
{
	struct fence f;

	if (r->dir == NULL)
		return NULL;
	fence_init(&f);
	f.timeout_deadline_ms = runner_timeout_deadline(r);
	fence_reload(&f, r->dir);
	return fence_check(&f, now_mono_ms());
}

int source_lock_wait(struct runner *r, int fd, const char *what, struct err *e)
{
	int64_t next = now_mono_ms() + 1000;
	const char *stop;

	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return err_sys(e, TERR_IO, "lock %s", what);
		if (now_mono_ms() >= next) {
			next = now_mono_ms() + 1000;
			if ((stop = source_fenced(r)) != NULL)
				return err_set(e, TERR_CONFLICT,
				               "%s while waiting for %s", stop,
				               what);
		}
		usleep(50 * 1000);
	}
	return 0;
}

static int copy_fd(int in, int out, struct err *e)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(e, TERR_IO, "read");
		}
		if (fd_write_all(out, buf, (size_t)n, e) < 0)
			return e ? e->code : TERR_IO;
	}
	return 0;
}

static int copy_tree_at(int sfd, int dfd, int depth, struct err *e);

/* Copy one directory entry (file, directory or symlink) from sfd to dfd. */
static int copy_entry(int sfd, int dfd, const char *name, int depth,
                      struct err *e)
{
	struct stat st;
	int in = -1, out = -1, r = 0;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return err_sys(e, TERR_IO, "stat %s", name);
	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(dfd, name, st.st_mode & 0777) < 0 &&
		    errno != EEXIST)
			return err_sys(e, TERR_IO, "mkdir %s", name);
		if ((in = openat(sfd, name,
		                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		                     O_CLOEXEC)) < 0 ||
		    (out = openat(dfd, name,
		                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		                      O_CLOEXEC)) < 0) {
			r = err_sys(e, TERR_IO, "open directory %s", name);
			goto out;
		}
		r = copy_tree_at(in, out, depth + 1, e);
		in = -1; /* closed by copy_tree_at */
		if (r < 0)
			err_wrap(e, "%s", name);
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return err_sys(e, TERR_IO, "readlink %s", name);
		target[n] = '\0';
		if (symlinkat(target, dfd, name) < 0)
			return err_sys(e, TERR_IO, "symlink %s", name);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return 0; /* sockets, fifos, devices: not source code */
	if ((in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return err_sys(e, TERR_IO, "open %s", name);
	if ((out = openat(dfd, name,
	                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                  st.st_mode & 0777)) < 0) {
		r = err_sys(e, TERR_IO, "create %s", name);
		goto out;
	}
	if ((r = copy_fd(in, out, e)) < 0)
		err_wrap(e, "copy %s", name);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

/* Copy the directory open at sfd into the one at dfd; closes sfd. */
static int copy_tree_at(int sfd, int dfd, int depth, struct err *e)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > COPY_MAX_DEPTH) {
		close(sfd);
		return err_set(e, TERR_TOOBIG, "directories nested too deep");
	}
	if ((d = fdopendir(sfd)) == NULL) {
		close(sfd);
		return err_sys(e, TERR_IO, "fdopendir");
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		r = copy_entry(dirfd(d), dfd, de->d_name, depth, e);
	}
	closedir(d);
	return r;
}

static int source_copy_path(struct runner *r, struct err *e)
{
	int sfd, dfd, rc;

	runner_logf(r, "source", "copying %s", r->spec->source.path);
	sfd = open(r->spec->source.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return err_sys(e, TERR_NOTFOUND, "source.path %s",
		               r->spec->source.path);
	dfd = open(r->work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		close(sfd);
		return err_sys(e, TERR_IO, "open %s", r->work_dir);
	}
	rc = copy_tree_at(sfd, dfd, 0, e);
	close(dfd);
	if (rc < 0)
		err_wrap(e, "copy %s", r->spec->source.path);
	return rc;
}

static int source_snapshot(struct runner *r, struct err *e)
{
	struct snapshot_limits lim = {
	    .max_entries = r->set.snapshot_max_entries,
	    .max_bytes = r->set.snapshot_max_bytes,
	};
	char *path = attempt_path(r->dir, ATTEMPT_SNAPSHOT);
	int rc;

	if (access(path, R_OK) < 0) {
		rc = err_sys(e, TERR_NOTFOUND,
		             "snapshot %s: %s is missing (the agent downloads"
		             " it before starting the runner)",
		             r->spec->source.snapshot, path);
		goto out;
	}
	runner_logf(r, "source", "extracting snapshot %.12s",
	            r->spec->source.snapshot);
	if ((rc = snapshot_extract(path, r->work_dir, &lim, e)) < 0)
		err_wrap(e, "snapshot");
out:
	free(path);
	return rc;
}

/* Remove what a refused git checkout wrote into dir (but keep dir). */
static void source_empty_dir(const char *dir)
{
	char *tmp = xasprintf("%s.refused.%d", dir, (int)getpid());

	if (rename(dir, tmp) == 0) {
		rm_rf(tmp, NULL);
		mkdir(dir, 0755);
	}
	free(tmp);
}

int source_fetch(struct runner *r, struct err *e)
{
	int rc = 0;

	if (r->work_dir == NULL)
		r->work_dir = attempt_path(r->dir, "work");
	if (mkdir_p(r->work_dir, 0755, e) < 0)
		return err_wrap(e, "work directory");
	switch (r->spec->source.kind) {
	case SOURCE_NONE:
		runner_logf(r, "source", "no source: empty work directory");
		break;
	case SOURCE_GIT:
		rc = gitsrc_fetch(r, e);
		break;
	case SOURCE_SNAPSHOT:
		rc = source_snapshot(r, e);
		break;
	case SOURCE_PATH:
		rc = source_copy_path(r, e);
		break;
	}
	if (rc < 0) {
		if (r->spec->source.kind == SOURCE_GIT) /* snapshot: done */
			source_empty_dir(r->work_dir);
		return rc;
	}
	if (geteuid() == 0 && r->uid != 0 &&
	    runner_chown_tree(r->work_dir, r->uid, r->gid, e) < 0) {
		log_warn("job=%s %s", r->job_id, e->msg); /* the job may cope */
		err_clear(e);
	}
	return 0;
}
