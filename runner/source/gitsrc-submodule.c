/* gitsrc-submodule.c: submodules of a git source, when the job asks for them
 * (source.git.submodules: true).
 *
 * .gitmodules is read from the checked-out commit's tree (not from the work
 * directory the job can write), each submodule's commit is the gitlink in
 * that tree, and each is fetched through its own mirror like the parent
 * (gitsrc.c), so a second job reuses those too.  Relative URLs resolve against
 * the parent's URL.  A remote parent may only name remote submodules: a
 * local path or file:// URL in a fetched .gitmodules could otherwise read
 * repositories on the node (another job's mirror). */
#include "runner/source/source.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <git2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SUBMODULE_MAX_DEPTH 4
#define SUBMODULE_MAX       256

struct list_ctx {
	git_config *cfg;
	git_tree *tree;
	const char *parent_url;
	struct gitsrc_submodule *v;
	size_t n;
	struct err *e;
};

/* A network URL (https, ssh, git, or scp-like [user@]host:path). */
static bool url_is_remote(const char *u)
{
	const char *colon = strchr(u, ':'), *slash = strchr(u, '/');

	if (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0 ||
	    strncmp(u, "ssh://", 6) == 0 || strncmp(u, "git://", 6) == 0)
		return true;
	if (strstr(u, "://") != NULL)
		return false; /* file:// and the like */
	return colon != NULL && (slash == NULL || colon < slash);
}

/* Resolve "../x.git" or "./x" against the parent's URL, as git does. */
static char *url_resolve(const char *parent, const char *rel)
{
	char *base = xstrdup(parent), *slash, *out;
	size_t n = strlen(base);

	if (strncmp(rel, "./", 2) != 0 && strncmp(rel, "../", 3) != 0) {
		free(base);
		return xstrdup(rel);
	}
	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';
	for (;;) {
		if (strncmp(rel, "./", 2) == 0) {
			rel += 2;
		} else if (strncmp(rel, "../", 3) == 0) {
			rel += 3;
			if ((slash = strrchr(base, '/')) != NULL)
				*slash = '\0';
		} else {
			break;
		}
	}
	out = xasprintf("%s/%s", base, rel);
	free(base);
	return out;
}

/* Add submodule `name` (its path from the key) to the list. */
static int list_one(const git_config_entry *ent, void *payload)
{
	struct list_ctx *c = payload;
	const char *key = ent->name + strlen("submodule.");
	size_t nlen = strlen(key) - strlen(".path");
	char *ukey = xasprintf("submodule.%.*s.url", (int)nlen, key);
	git_config_entry *url = NULL;
	git_tree_entry *te = NULL;
	struct gitsrc_submodule *sm;
	int rc = 0;

	if (c->n >= SUBMODULE_MAX || !path_is_safe_relative(ent->value) ||
	    git_config_get_entry(&url, c->cfg, ukey) < 0) {
		rc = err_set(c->e, TERR_INVAL,
		             "submodule '%.*s': bad path or no url in "
		             ".gitmodules",
		             (int)nlen, key);
		goto out;
	}
	if (git_tree_entry_bypath(&te, c->tree, ent->value) < 0 ||
	    git_tree_entry_filemode(te) != GIT_FILEMODE_COMMIT) {
		rc = err_set(c->e, TERR_INVAL,
		             "submodule '%.*s': the commit records no "
		             "submodule at '%s'",
		             (int)nlen, key, ent->value);
		goto out;
	}
	c->v = realloc(c->v, (c->n + 1) * sizeof(*c->v));
	if (c->v == NULL)
		abort();
	sm = &c->v[c->n++];
	sm->name = xasprintf("%.*s", (int)nlen, key);
	sm->path = xstrdup(ent->value);
	sm->url = url_resolve(c->parent_url, url->value);
	git_oid_tostr(sm->commit, sizeof(sm->commit), git_tree_entry_id(te));
	if (url_is_remote(c->parent_url) && !url_is_remote(sm->url))
		rc = err_set(c->e, TERR_INVAL,
		             "submodule '%s': '%s' is a local path, and the "
		             "repository is remote: refusing",
		             sm->name, sm->url);
out:
	git_tree_entry_free(te);
	git_config_entry_free(url);
	free(ukey);
	return rc < 0 ? GIT_EUSER : 0;
}

/* Does the config text have an [include] or [includeIf …] section?
 * libgit2's file backend follows them (real git does not for
 * .gitmodules): the root runner would open a path the repository names
 * (a FIFO, a host file whose values end up in the log). */
static bool has_include(const char *p, size_t len)
{
	const char *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *l = p, *le = nl ? nl : end;

		p = nl ? nl + 1 : end;
		while (l < le && (*l == ' ' || *l == '\t'))
			l++;
		if (l >= le || *l != '[')
			continue;
		l++;
		while (l < le && (*l == ' ' || *l == '\t'))
			l++;
		if (le - l >= 7 && strncasecmp(l, "include", 7) == 0)
			return true;
	}
	return false;
}

/* Parse the .gitmodules blob of tree into cfg (through a private file). */
static int gitmodules_open(git_repository *repo, git_tree *tree,
                           git_config **cfg, struct err *e)
{
	const git_tree_entry *te = git_tree_entry_byname(tree, ".gitmodules");
	char path[] = "/tmp/tether-gitmodules-XXXXXX";
	git_blob *blob = NULL;
	int fd = -1, rc = 0;

	if (te == NULL ||
	    git_blob_lookup(&blob, repo, git_tree_entry_id(te)) < 0)
		return err_set(e, TERR_INVAL, ".gitmodules is not a file");
	if (has_include(git_blob_rawcontent(blob),
	                (size_t)git_blob_rawsize(blob))) {
		rc = err_set(e, TERR_INVAL,
		             ".gitmodules has an [include] section: refusing "
		             "(git does not read includes in .gitmodules)");
		goto out;
	}
	if ((fd = mkstemp(path)) < 0) {
		rc = err_sys(e, TERR_IO, "temporary file");
		goto out;
	}
	if ((rc = fd_write_all(fd, git_blob_rawcontent(blob),
	                       (size_t)git_blob_rawsize(blob), e)) < 0)
		goto out;
	if (git_config_open_ondisk(cfg, path) < 0)
		rc =
		    err_set(e, TERR_INVAL, ".gitmodules: %s",
		            git_error_last() ? git_error_last()->message : "?");
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	git_blob_free(blob);
	return rc;
}

int gitsrc_submodule_list(struct git_repository *repo, struct git_tree *tree,
                          const char *parent_url, struct gitsrc_submodule **out,
                          size_t *n, struct err *e)
{
	struct list_ctx c = {.tree = tree, .parent_url = parent_url, .e = e};
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = gitmodules_open(repo, tree, &c.cfg, e)) < 0)
		return err_wrap(e, "submodules");
	if (git_config_foreach_match(c.cfg, "^submodule\\..*\\.path$", list_one,
	                             &c) < 0) {
		rc = e && e->code ? e->code : TERR_INVAL;
		gitsrc_submodules_free(c.v, c.n);
	} else {
		*out = c.v;
		*n = c.n;
	}
	git_config_free(c.cfg);
	return rc;
}

int gitsrc_submodule_checkout(struct runner *r,
                              const struct gitsrc_submodule *sm,
                              const char *dir, int depth, struct err *e)
{
	char *sub = xasprintf("%s/%s", dir, sm->path);
	int rc;

	if (depth > SUBMODULE_MAX_DEPTH) {
		rc = err_set(e, TERR_TOOBIG,
		             "submodule '%s': nested more than %d deep",
		             sm->name, SUBMODULE_MAX_DEPTH);
		goto out;
	}
	runner_logf(r, "source", "submodule %s (%s) at %.12s", sm->name,
	            sm->path, sm->commit);
	if ((rc = mkdir_p(sub, 0755, e)) < 0 ||
	    (rc = gitsrc_checkout(r, sm->url, sm->commit, NULL, sub, depth,
	                          NULL, e)) < 0)
		err_wrap(e, "submodule '%s'", sm->name);
out:
	free(sub);
	return rc;
}

void gitsrc_submodules_free(struct gitsrc_submodule *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].path);
		free(v[i].url);
	}
	free(v);
}
