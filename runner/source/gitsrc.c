/* gitsrc.c: fetch a job's git source through a per-node mirror cache.
 *
 * Each URL has one bare mirror, <state_dir>/git/<sha256(url)>.git, guarded
 * by an flock on <mirror>.lock so that concurrent jobs share it.  A pinned
 * commit the mirror already has needs no network at all; otherwise the
 * mirror fetches branches and tags (only what is new).  The commit's tree
 * is then written into r->work_dir straight from the mirror (gitsrc-tree.c): no
 * second clone.  Submodules (gitsrc-submodule.c) go the same way, each through
 * its own mirror, when the job asks for them.  Credentials come from the job's
 * secrets (a token for https, a deploy key for ssh) and are never written to
 * the mirror's config. */
#include "runner/source/source.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct gitsrc {
	struct runner *r;
	const char *url;
	char *safe_url; /* url without user:password@ for the log */
	char *mirror, *lockpath;
	int lock_fd;
	git_repository *repo;
	int cred_calls;
	struct err why;           /* our reason, when a callback refused */
	const char *commit, *ref; /* what to check out (either may be NULL) */
	const char *dir;          /* where to */
	char hex[41];             /* the resolved commit */
	git_indexer_progress stats;
	int64_t next_fence_ms; /* when to check the cancel and lease files */
};

/* What this attempt's git source may write (source_max_bytes): each fetch
 * may receive that much, and all checkouts together may write that much.
 * One runner fetches one source, so one budget per process. */
static struct source_budget git_budget = {
    SOURCE_MAX_BYTES_DEFAULT, 0, INT64_MAX, 0, NULL, 0};

/* Message of the last libgit2 error. */
static const char *git_msg(void)
{
	const git_error *ge = git_error_last();

	return ge && ge->message ? ge->message : "unknown libgit2 error";
}

static char *url_redact(const char *url)
{
	const char *scheme = strstr(url, "://"), *at, *slash;

	if (scheme == NULL)
		return xstrdup(url);
	slash = strchr(scheme + 3, '/');
	at = strchr(scheme + 3, '@');
	if (at == NULL || (slash && at > slash))
		return xstrdup(url);
	return xasprintf("%.*s%s", (int)(scheme + 3 - url), url, at + 1);
}

/* Port of an ssh:// URL, 0 when none is given (scp-like: always 0). */
static int url_port(const char *url)
{
	const char *h = strstr(url, "://"), *end, *colon;
	int64_t port = 0;

	if (h == NULL)
		return 0;
	h += 3;
	end = h + strcspn(h, "/");
	if (memchr(h, '@', (size_t)(end - h)))
		h = (const char *)memchr(h, '@', (size_t)(end - h)) + 1;
	colon = memchr(h, ':', (size_t)(end - h));
	if (colon == NULL)
		return 0;
	char *num = xasprintf("%.*s", (int)(end - colon - 1), colon + 1);
	if (parse_i64(num, 1, 65535, &port, NULL) < 0)
		port = 0;
	free(num);
	return (int)port;
}

static int cb_credentials(git_credential **out, const char *url,
                          const char *user, unsigned int allowed, void *payload)
{
	struct gitsrc *g = payload;
	const struct jobspec *s = g->r->spec;
	const char *name, *val;

	if (g->cred_calls++ > 0) {
		err_set(&g->why, TERR_AUTH,
		        "authentication failed: %s rejected the credential "
		        "from secret '%s'",
		        g->safe_url,
		        s->source.token_secret     ? s->source.token_secret
		        : s->source.ssh_key_secret ? s->source.ssh_key_secret
		                                   : "");
		return GIT_EAUTH;
	}
	if (allowed & GIT_CREDENTIAL_SSH_KEY) {
		name = s->source.ssh_key_secret;
		if (name == NULL || (val = jobspec_secret(s, name)) == NULL)
			goto missing;
		return git_credential_ssh_key_memory_new(
		    out, user ? user : "git", NULL, val, NULL);
	}
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		name = s->source.token_secret;
		if (name == NULL || (val = jobspec_secret(s, name)) == NULL)
			goto missing;
		return git_credential_userpass_plaintext_new(
		    out, user ? user : "x-access-token", val);
	}
	err_set(&g->why, TERR_AUTH, "%s asks for an unsupported credential",
	        g->safe_url);
	return GIT_EAUTH;
missing:
	err_set(&g->why, TERR_AUTH,
	        "%s asks for credentials but the job gives none (set "
	        "source.git.%s to the name of one of its secrets)",
	        g->safe_url,
	        (allowed & GIT_CREDENTIAL_SSH_KEY) ? "ssh_key_secret"
	                                           : "token_secret");
	(void)url;
	return GIT_EAUTH;
}

static int cb_certificate(git_cert *cert, int valid, const char *host,
                          void *payload)
{
	struct gitsrc *g = payload;
	const char *kh = g->r->set.known_hosts;
	git_cert_hostkey *hk = (git_cert_hostkey *)cert;

	if (cert->cert_type == GIT_CERT_X509) {
		if (valid)
			return 0;
		err_set(&g->why, TERR_AUTH,
		        "TLS certificate of %s is not trusted (give the CA "
		        "in the runner setting git_ca_file)",
		        host);
		return GIT_ECERTIFICATE;
	}
	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2 ||
	    !(hk->type & GIT_CERT_SSH_RAW)) {
		err_set(&g->why, TERR_AUTH, "%s: no raw host key to check",
		        host);
		return GIT_ECERTIFICATE;
	}
	if (kh == NULL)
		kh = "/etc/ssh/ssh_known_hosts";
	if (gitsrc_hostkey_check(kh, host, url_port(g->url), hk->hostkey,
	                         hk->hostkey_len, &g->why) < 0)
		return GIT_ECERTIFICATE;
	return 0;
}

/* Abort the transfer when the attempt must stop (checked once a second). */
static int check_fence(struct gitsrc *g)
{
	const char *stop;

	if (now_mono_ms() < g->next_fence_ms)
		return 0;
	g->next_fence_ms = now_mono_ms() + 1000;
	if ((stop = source_fenced(g->r)) == NULL)
		return 0;
	err_set(&g->why, TERR_CONFLICT, "%s while fetching %s", stop,
	        g->safe_url);
	return -1;
}

static int cb_progress(const git_indexer_progress *st, void *payload)
{
	struct gitsrc *g = payload;

	g->stats = *st;
	if ((int64_t)st->received_bytes > git_budget.max_bytes) {
		err_set(&g->why, TERR_TOOBIG,
		        "fetch %s: more than %lld bytes received (the git "
		        "source size limit, source_max_bytes)",
		        g->safe_url, (long long)git_budget.max_bytes);
		return -1;
	}
	return check_fence(g);
}

static int cb_sideband(const char *str, int len, void *payload)
{
	(void)str;
	(void)len;
	return check_fence(payload);
}

/* Open (or create) the mirror for g->url and take its lock. */
static int mirror_open(struct gitsrc *g, struct err *e)
{
	char hex[SHA256_HEX_LEN + 1], *dir;
	int rc;

	sha256_hex(g->url, strlen(g->url), hex);
	dir = xasprintf("%s/git",
	                g->r->set.state_dir ? g->r->set.state_dir : ".");
	g->mirror = xasprintf("%s/%s.git", dir, hex);
	g->lockpath = xasprintf("%s/%s.lock", dir, hex);
	rc = mkdir_p(dir, 0700, e);
	free(dir);
	if (rc < 0)
		return err_wrap(e, "mirror cache");
	g->lock_fd = open(g->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (g->lock_fd < 0)
		return err_sys(e, TERR_IO, "open %s", g->lockpath);
	if (flock(g->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		runner_logf(g->r, "source",
		            "waiting for the mirror of %s (another job is "
		            "fetching it)",
		            g->safe_url);
		if (source_lock_wait(g->r, g->lock_fd, "the mirror's lock", e) <
		    0)
			return err_wrap(e, "%s", g->safe_url);
	}
	if (git_repository_open_bare(&g->repo, g->mirror) == 0)
		return 0;
	if (access(g->mirror, F_OK) == 0) {
		runner_logf(g->r, "source", "mirror %s is damaged: recreating",
		            g->mirror);
		rm_rf(g->mirror, NULL);
	}
	if (git_repository_init(&g->repo, g->mirror, 1) < 0)
		return err_set(e, TERR_IO, "create mirror %s: %s", g->mirror,
		               git_msg());
	runner_logf(g->r, "source", "new mirror for %s", g->safe_url);
	return 0;
}

/* Point the mirror's HEAD at the remote's default branch. */
static int mirror_set_head(struct gitsrc *g, git_remote *remote, struct err *e)
{
	git_buf buf = GIT_BUF_INIT;
	int rc = 0;

	if (git_remote_default_branch(&buf, remote) < 0) {
		runner_logf(g->r, "source",
		            "%s does not say its default branch; using HEAD",
		            g->safe_url);
		return 0;
	}
	if (git_repository_set_head(g->repo, buf.ptr) < 0)
		rc = err_set(e, TERR_FAIL, "mirror HEAD -> %s: %s", buf.ptr,
		             git_msg());
	git_buf_dispose(&buf);
	return rc;
}

/* Fetch branches and tags (plus `ref` when it is a full ref name). */
static int mirror_fetch(struct gitsrc *g, const char *ref, struct err *e)
{
	git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
	char *specv[3] = {"+refs/heads/*:refs/heads/*",
	                  "+refs/tags/*:refs/tags/*", NULL};
	git_strarray specs = {specv, 2};
	git_remote *remote = NULL;
	char *extra = NULL;
	int rc = 0;

	if (ref && strncmp(ref, "refs/", 5) == 0 &&
	    strncmp(ref, "refs/heads/", 11) && strncmp(ref, "refs/tags/", 10))
		specv[specs.count++] = extra = xasprintf("+%s:%s", ref, ref);
	fo.callbacks.credentials = cb_credentials;
	fo.callbacks.certificate_check = cb_certificate;
	fo.callbacks.transfer_progress = cb_progress;
	fo.callbacks.sideband_progress = cb_sideband;
	fo.callbacks.payload = g;
	fo.prune = GIT_FETCH_PRUNE;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	g->cred_calls = 0;
	err_clear(&g->why);
	if (git_remote_create_anonymous(&remote, g->repo, g->url) < 0 ||
	    git_remote_fetch(remote, &specs, &fo, NULL) < 0) {
		if (g->why.code)
			rc = err_set(e, g->why.code, "%s", g->why.msg);
		else
			rc = err_set(e, TERR_NET, "fetch %s: %s", g->safe_url,
			             git_msg());
		goto out;
	}
	if (g->stats.received_objects == 0)
		runner_logf(g->r, "source",
		            "fetched %s: mirror already up to date",
		            g->safe_url);
	else
		runner_logf(g->r, "source",
		            "fetched %s: %u objects received (%zu bytes)%s",
		            g->safe_url, g->stats.received_objects,
		            g->stats.received_bytes,
		            g->stats.local_objects > 0
		                ? ", the rest already in the mirror"
		                : "");
	if (ref == NULL)
		rc = mirror_set_head(g, remote, e);
out:
	git_remote_free(remote);
	free(extra);
	return rc;
}

/* Look up a commit by full or abbreviated hex; TERR_NOTFOUND if absent. */
static int lookup_commit(struct gitsrc *g, const char *hex, git_commit **out,
                         struct err *e)
{
	git_oid oid;
	size_t n = strlen(hex);
	int rc;

	if (git_oid_fromstrn(&oid, hex, n) < 0)
		return err_set(e, TERR_INVAL, "commit %s: not hex", hex);
	rc = git_commit_lookup_prefix(out, g->repo, &oid, n);
	if (rc == GIT_EAMBIGUOUS)
		return err_set(e, TERR_INVAL,
		               "commit %s is ambiguous in %s: give more digits",
		               hex, g->safe_url);
	if (rc < 0)
		return err_set(e, TERR_NOTFOUND, "commit %s: %s", hex,
		               git_msg());
	return 0;
}

/* Resolve a branch, tag or full ref name (or NULL: HEAD) to a commit. */
static int resolve_ref(struct gitsrc *g, const char *ref, git_commit **out,
                       struct err *e)
{
	const char *prefixes[] = {"refs/heads/", "refs/tags/", ""};
	git_object *obj = NULL;

	if (ref == NULL) {
		if (git_revparse_single(&obj, g->repo, "HEAD^{commit}") < 0)
			return err_set(e, TERR_NOTFOUND,
			               "%s has no default branch (HEAD): give "
			               "source.git.ref or commit",
			               g->safe_url);
		*out = (git_commit *)obj;
		return 0;
	}
	for (size_t i = 0; i < 3; i++) {
		char *name = xasprintf("%s%s", prefixes[i], ref);
		char *spec = xasprintf("%s^{commit}", name);
		git_reference *gr = NULL;
		int found = git_reference_lookup(&gr, g->repo, name) == 0 &&
		            git_revparse_single(&obj, g->repo, spec) == 0;
		git_reference_free(gr);
		free(name);
		free(spec);
		if (found) {
			*out = (git_commit *)obj;
			return 0;
		}
	}
	return err_set(e, TERR_NOTFOUND,
	               "ref '%s' is not a branch or tag of %s", ref,
	               g->safe_url);
}

/* The commit asked for: fetch only when the mirror lacks it. */
static int find_commit(struct gitsrc *g, git_commit **out, struct err *e)
{
	struct err miss = {0};
	int rc;

	if (g->commit) {
		if (lookup_commit(g, g->commit, out, &miss) == 0) {
			runner_logf(g->r, "source",
			            "mirror already has commit %s: no fetch",
			            g->commit);
			return 0;
		}
		if (miss.code == TERR_INVAL)
			return err_set(e, miss.code, "%s", miss.msg);
		if ((rc = mirror_fetch(g, g->ref, e)) < 0)
			return rc;
		if (lookup_commit(g, g->commit, out, &miss) == 0)
			return 0;
		return err_set(e, TERR_NOTFOUND,
		               "commit %s is not in %s (fetched its branches "
		               "and tags; is the commit pushed?)",
		               g->commit, g->safe_url);
	}
	if ((rc = mirror_fetch(g, g->ref, e)) < 0)
		return rc;
	return resolve_ref(g, g->ref, out, e);
}

/* Write the commit's tree into g->dir (files only, no .git); list its
 * submodules when the job wants them. */
static int checkout_tree(struct gitsrc *g, git_commit *c,
                         struct gitsrc_submodule **subs, size_t *nsubs,
                         struct err *e)
{
	git_tree *tree = NULL;
	int rc = 0;

	if (git_commit_tree(&tree, c) < 0) {
		rc = err_set(e, TERR_FAIL, "tree of %s: %s", g->hex, git_msg());
		goto out;
	}
	if ((rc = gitsrc_tree_write(g->repo, tree, g->dir, &git_budget, e)) <
	    0) {
		err_wrap(e, "checkout %s into %s", g->hex, g->dir);
		goto out;
	}
	if (git_tree_entry_byname(tree, ".gitmodules") == NULL)
		goto out;
	if (!g->r->spec->source.submodules) {
		runner_logf(g->r, "source",
		            "the repository has submodules (.gitmodules) but "
		            "source.git.submodules is false: they are not "
		            "checked out");
		goto out;
	}
	rc = gitsrc_submodule_list(g->repo, tree, g->url, subs, nsubs, e);
out:
	git_tree_free(tree);
	return rc;
}

static void gitsrc_close(struct gitsrc *g)
{
	git_repository_free(g->repo);
	g->repo = NULL;
	if (g->lock_fd >= 0)
		close(g->lock_fd);
	g->lock_fd = -1;
	free(g->mirror);
	free(g->lockpath);
	free(g->safe_url);
	g->mirror = g->lockpath = g->safe_url = NULL;
}

/* Trust the CA file the runner settings give for https remotes. */
static void gitsrc_init(struct runner *r)
{
	const char *ca = r->set.git_ca_file;

	git_libgit2_init();
	if (ca)
		git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca, NULL);
}

/* Fetch url into its mirror (under its lock) and check the commit out into
 * g->dir; the submodules to do next are returned. */
static int gitsrc_one(struct gitsrc *g, struct gitsrc_submodule **subs,
                      size_t *nsubs, struct err *e)
{
	git_commit *c = NULL;
	int rc;

	g->safe_url = url_redact(g->url);
	if ((rc = mirror_open(g, e)) < 0 || (rc = find_commit(g, &c, e)) < 0)
		goto out;
	git_oid_tostr(g->hex, sizeof(g->hex), git_commit_id(c));
	runner_logf(g->r, "source", "checking out %s (%s)%s%s", g->hex,
	            g->ref      ? g->ref
	            : g->commit ? "pinned"
	                        : "default branch",
	            g->dir != g->r->work_dir ? " into " : "",
	            g->dir != g->r->work_dir ? g->dir : "");
	rc = checkout_tree(g, c, subs, nsubs, e);
out:
	git_commit_free(c);
	gitsrc_close(g);
	return rc;
}

int gitsrc_checkout(struct runner *r, const char *url, const char *commit,
                    const char *ref, const char *dir, int depth, char hex[41],
                    struct err *e)
{
	struct gitsrc g = {.r = r,
	                   .url = url,
	                   .commit = commit,
	                   .ref = ref,
	                   .dir = dir,
	                   .lock_fd = -1};
	struct gitsrc_submodule *subs = NULL;
	size_t nsubs = 0;
	int rc;

	if ((rc = gitsrc_one(&g, &subs, &nsubs, e)) < 0)
		goto out;
	if (hex)
		memcpy(hex, g.hex, sizeof(g.hex));
	/* the parent's mirror is unlocked now: submodules take their own */
	for (size_t i = 0; i < nsubs && rc == 0; i++) {
		const char *stop = source_fenced(r);

		if (stop != NULL)
			rc = err_set(e, TERR_CONFLICT,
			             "stopped before submodule '%s': %s",
			             subs[i].name, stop);
		else
			rc = gitsrc_submodule_checkout(r, &subs[i], dir,
			                               depth + 1, e);
	}
out:
	gitsrc_submodules_free(subs, nsubs);
	return rc;
}

int gitsrc_fetch(struct runner *r, struct err *e)
{
	char hex[41];
	int rc;

	gitsrc_init(r);
	git_budget.max_bytes = r->set.source_max_bytes;
	git_budget.used = 0;
	git_budget.max_entries = r->set.snapshot_max_entries;
	git_budget.entries = 0;
	git_budget.r = r;
	git_budget.next_fence_ms = 0;
	rc = gitsrc_checkout(r, r->spec->source.url, r->spec->source.commit,
	                     r->spec->source.ref, r->work_dir, 0, hex, e);
	if (rc == 0) {
		free(r->commit);
		r->commit = xstrdup(hex);
	}
	git_libgit2_shutdown(); /* balances gitsrc_init's git_libgit2_init */
	return rc;
}
