/* gitsrc-tree.c: write a commit's tree into a directory, straight from the
 * mirror's objects (no index, no .git, no second clone).
 *
 * libgit2's checkout needs a working tree as soon as the tree holds a
 * submodule, so the files are written here: directories, regular and
 * executable files, symlinks, and an empty directory for each submodule
 * (gitsrc.c fills it when the job asks for submodules).  Every entry is created
 * with *at() calls below the open target directory, never following a
 * symlink, and names ".", "..", ".git" or containing '/' are refused. */
#include "runner/source/source.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TREE_MAX_DEPTH 256

static int tree_write_at(git_repository *repo, const git_tree *tree, int dfd,
                         int depth, struct source_budget *b, struct err *e);

static bool name_ok(const char *n)
{
	return n[0] != '\0' && strchr(n, '/') == NULL && strcmp(n, ".") != 0 &&
	       strcmp(n, "..") != 0 && strcasecmp(n, ".git") != 0;
}

static int blob_get(git_repository *repo, const git_tree_entry *te,
                    git_blob **out, struct err *e)
{
	if (git_blob_lookup(out, repo, git_tree_entry_id(te)) < 0)
		return err_set(e, TERR_FAIL, "'%s': %s",
		               git_tree_entry_name(te),
		               git_error_last() ? git_error_last()->message
		                                : "missing object");
	return 0;
}

/* Count a blob of size bytes into b; TERR_TOOBIG when over the bound. */
static int budget_take(struct source_budget *b, const char *name, int64_t size,
                       struct err *e)
{
	b->used += size;
	if (b->used > b->max_bytes)
		return err_set(
		    e, TERR_TOOBIG,
		    "'%s': more than %lld bytes checked out (the git "
		    "source size limit, source_max_bytes)",
		    name, (long long)b->max_bytes);
	return 0;
}

static int write_file(git_repository *repo, const git_tree_entry *te, int dfd,
                      mode_t mode, struct source_budget *b, struct err *e)
{
	const char *name = git_tree_entry_name(te);
	git_blob *blob = NULL;
	int fd = -1, rc;

	if ((rc = blob_get(repo, te, &blob, e)) < 0)
		return rc;
	if ((rc = budget_take(b, name, (int64_t)git_blob_rawsize(blob), e)) <
	    0) {
		git_blob_free(blob);
		return rc;
	}
	fd =
	    openat(dfd, name,
	           O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		rc = err_sys(e, TERR_IO, "create '%s'", name);
	else if ((rc = fd_write_all(fd, git_blob_rawcontent(blob),
	                            (size_t)git_blob_rawsize(blob), e)) < 0)
		err_wrap(e, "'%s'", name);
	if (fd >= 0 && fchmod(fd, mode) < 0 && rc == 0)
		rc = err_sys(e, TERR_IO, "chmod '%s'", name);
	if (fd >= 0)
		close(fd);
	git_blob_free(blob);
	return rc;
}

static int write_link(git_repository *repo, const git_tree_entry *te, int dfd,
                      struct err *e)
{
	const char *name = git_tree_entry_name(te);
	git_blob *blob = NULL;
	char *target;
	int rc;

	if ((rc = blob_get(repo, te, &blob, e)) < 0)
		return rc;
	target = xasprintf("%.*s", (int)git_blob_rawsize(blob),
	                   (const char *)git_blob_rawcontent(blob));
	unlinkat(dfd, name, 0);
	if (symlinkat(target, dfd, name) < 0)
		rc = err_sys(e, TERR_IO, "symlink '%s'", name);
	free(target);
	git_blob_free(blob);
	return rc;
}

/* A directory entry: create it and fill it (a submodule stays empty). */
static int write_dir(git_repository *repo, const git_tree_entry *te, int dfd,
                     int depth, struct source_budget *b, struct err *e)
{
	const char *name = git_tree_entry_name(te);
	git_tree *sub = NULL;
	int fd, rc;

	if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
		return err_sys(e, TERR_IO, "mkdir '%s'", name);
	if (git_tree_entry_filemode(te) == GIT_FILEMODE_COMMIT)
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, TERR_IO, "open '%s'", name);
	if (git_tree_lookup(&sub, repo, git_tree_entry_id(te)) < 0)
		rc = err_set(e, TERR_FAIL, "tree '%s' is missing", name);
	else if ((rc = tree_write_at(repo, sub, fd, depth + 1, b, e)) < 0)
		err_wrap(e, "%s", name);
	git_tree_free(sub);
	close(fd);
	return rc;
}

/* Count one entry; stop when over the bound or when the attempt is
 * cancelled or fenced (checked once a second). */
static int entry_take(struct source_budget *b, const char *name, struct err *e)
{
	const char *stop;
	int64_t now;

	if (++b->entries > b->max_entries)
		return err_set(e, TERR_TOOBIG,
		               "'%s': more than %lld entries checked out (the "
		               "source entry limit, snapshot_max_entries)",
		               name, (long long)b->max_entries);
	if (b->r == NULL || (b->entries & 255) != 0 ||
	    (now = now_mono_ms()) < b->next_fence_ms)
		return 0;
	b->next_fence_ms = now + 1000;
	if ((stop = source_fenced(b->r)) != NULL)
		return err_set(e, TERR_CONFLICT,
		               "stopped while checking out: %s", stop);
	return 0;
}

static int tree_write_at(git_repository *repo, const git_tree *tree, int dfd,
                         int depth, struct source_budget *b, struct err *e)
{
	size_t n = git_tree_entrycount(tree);
	int rc = 0;

	if (depth > TREE_MAX_DEPTH)
		return err_set(e, TERR_TOOBIG, "directories nested too deep");
	for (size_t i = 0; i < n && rc == 0; i++) {
		const git_tree_entry *te = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(te);
		if (!name_ok(name))
			return err_set(e, TERR_INVAL,
			               "refusing tree entry '%s'", name);
		if ((rc = entry_take(b, name, e)) < 0)
			return rc;
		switch (git_tree_entry_filemode(te)) {
		case GIT_FILEMODE_TREE:
		case GIT_FILEMODE_COMMIT:
			rc = write_dir(repo, te, dfd, depth, b, e);
			break;
		case GIT_FILEMODE_BLOB_EXECUTABLE:
			rc = write_file(repo, te, dfd, 0755, b, e);
			break;
		case GIT_FILEMODE_LINK:
			rc = write_link(repo, te, dfd, e);
			break;
		default:
			rc = write_file(repo, te, dfd, 0644, b, e);
		}
	}
	return rc;
}

int gitsrc_tree_write(struct git_repository *repo, struct git_tree *tree,
                      const char *dir, struct source_budget *b, struct err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return err_sys(e, TERR_IO, "open %s", dir);
	rc = tree_write_at(repo, tree, fd, 0, b, e);
	close(fd);
	return rc;
}
