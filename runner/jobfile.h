/* jobfile.h: reading files of a job's source as root.
 *
 * The runner runs as root and the source is the job's: every file it
 * reads from there (requirements and conda files, Dockerfiles, ignore
 * files, anything hashed for a cache key) is opened beneath the work
 * directory, never through a symlink leaving it or a magic link
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS; without openat2, by
 * hand, component by component, refusing every symlink), only when it is
 * a regular file (a FIFO or a device is refused without blocking), and
 * read up to a size cap by a loop that stops when the attempt must stop
 * (cancel, lease, timeout). */
#ifndef TETHER_JOBFILE_H
#define TETHER_JOBFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct runner;

#define JOBFILE_MAX (16 << 20) /* a source file the runner reads */

/* Open rel (relative) beneath dirfd, read-only, a regular file. */
int jobfile_openat(int dirfd, const char *rel, int *fd, struct err *e);
/* Read dir/rel whole (at most max bytes, NUL-terminated); r (may be NULL)
 * is checked for cancel while reading.  Errors name rel. */
int jobfile_read(struct runner *r, const char *dir, const char *rel, size_t max,
                 char **out, size_t *len, struct err *e);
/* sha256 hex of dir/rel (at most max bytes), as jobfile_read. */
int jobfile_sha256(struct runner *r, const char *dir, const char *rel,
                   size_t max, char out[65], struct err *e);

/* Tests: behave as on a kernel without openat2 (the by-hand walk). */
void jobfile_without_openat2(bool yes);

#endif
