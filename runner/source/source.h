/* source.h: fetching a job's code into r->work_dir (git via libgit2, a
 * workspace snapshot, or a local directory for local submits).
 *
 * source.c dispatches on spec.source.kind; gitsrc.c keeps the per-node
 * mirror cache (<state_dir>/git/<sha256(url)>.git); snapshot.c extracts
 * <attempt dir>/snapshot.tar.gz with libarchive's secure flags and limits.
 * Runner settings read here (all optional, docs/environments.md):
 * known_hosts, git_ca_file, snapshot_max_entries, snapshot_max_bytes,
 * source_max_bytes. */
#ifndef TETHER_SOURCE_H
#define TETHER_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "runner/runner.h"

struct err;

/* Fill r->work_dir from the spec's source and set r->commit for git.
 * Failure means the attempt ends source_failed with a clear reason. */
int source_fetch(struct runner *r, struct err *e);

/* gitsrc.c: fetch spec.source.git into the mirror and check the resolved
 * commit out into r->work_dir; sets r->commit. */
int gitsrc_fetch(struct runner *r, struct err *e);

struct snapshot_limits {
	int64_t max_entries; /* entries in the archive */
	int64_t max_bytes;   /* total uncompressed file bytes */
};

/* Default of snapshot_max_bytes and source_max_bytes (common/attempt.h). */
#define SOURCE_MAX_BYTES_DEFAULT ATTEMPT_DEF_SOURCE_MAX

/* snapshot.c: extract a gzip tar into dir (which must exist).  Refuses
 * absolute paths, "..", device nodes and fifos, links leading out of dir,
 * and archives over the limits; on refusal dir is emptied again.
 * TERR_INVAL (hostile archive) or TERR_TOOBIG (limits), reason in e. */
int snapshot_extract(const char *archive, const char *dir,
                     const struct snapshot_limits *lim, struct err *e);

/* gitsrc.c: fetch url into its mirror and check out commit (or ref, or the
 * default branch) into dir, then its submodules when the job asks for them
 * (depth counts the nesting); hex (may be NULL) gets the commit. */
int gitsrc_checkout(struct runner *r, const char *url, const char *commit,
                    const char *ref, const char *dir, int depth, char hex[41],
                    struct err *e);

/* gitsrc-submodule.c: one submodule of a checked-out tree. */
struct gitsrc_submodule {
	char *name, *path, *url; /* path relative to the parent's dir */
	char commit[41];         /* the gitlink in the parent's tree */
};
struct git_repository;
struct git_tree;
/* Read .gitmodules and the gitlinks of tree; relative URLs are resolved
 * against parent_url.  Paths are checked (relative, no ".."). */
int gitsrc_submodule_list(struct git_repository *repo, struct git_tree *tree,
                          const char *parent_url, struct gitsrc_submodule **out,
                          size_t *n, struct err *e);
/* Bytes a git source may write into the work directory (all trees,
 * submodules included): source_max_bytes. */
struct source_budget {
	int64_t max_bytes, used;
	/* entries written (files, directories, links, submodules), at most
	 * max_entries (snapshot_max_entries): a tree can name one subtree
	 * many times, so bytes alone do not bound a checkout */
	int64_t max_entries, entries;
	struct runner *r;      /* for cancel/lease checks (source_fenced) */
	int64_t next_fence_ms; /* when to check them next */
};
/* gitsrc-tree.c: write tree's files into dir (which exists), counting blob
 * bytes and entries into b; TERR_TOOBIG naming source_max_bytes or
 * snapshot_max_entries when over one; TERR_CONFLICT when the attempt is
 * cancelled or its lease lapses meanwhile. */
int gitsrc_tree_write(struct git_repository *repo, struct git_tree *tree,
                      const char *dir, struct source_budget *b, struct err *e);
/* Check one submodule out into <dir>/<path> at its commit. */
int gitsrc_submodule_checkout(struct runner *r,
                              const struct gitsrc_submodule *sm,
                              const char *dir, int depth, struct err *e);
void gitsrc_submodules_free(struct gitsrc_submodule *v, size_t n);

/* gitsrc-hostkey.c: 0 when known_hosts holds exactly this key for host (and
 * port, 0 or 22 meaning the default); TERR_AUTH naming the file when the
 * host is unknown or its key changed. */
int gitsrc_hostkey_check(const char *known_hosts, const char *host, int port,
                         const void *key, size_t key_len, struct err *e);

/* Why the attempt must stop now ("cancelled", "lost": the agent's cancel
 * and lease files), or NULL.  Long source and env steps check it at least
 * once a second and abort. */
const char *source_fenced(struct runner *r);
/* flock(fd, LOCK_EX), waiting as long as another holder keeps it but no
 * longer than the attempt may go on: TERR_CONFLICT naming why (cancel,
 * lease) when source_fenced says so meanwhile (checked once a second). */
int source_lock_wait(struct runner *r, int fd, const char *what, struct err *e);

#endif
