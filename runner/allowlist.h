/* allowlist.h: the admin's allowed_mounts (runner setting) for the job's
 * data mounts, one rule for every launcher (sandbox, docker). */
#ifndef TETHER_ALLOWLIST_H
#define TETHER_ALLOWLIST_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>

struct attempt_mount;
struct runner;

/* The allowed_mounts entry covering source, or NULL.  Both sides are
 * compared resolved (realpath: no symlink leads out of an entry) where they
 * exist, else as written; real gets the source as compared, which is what
 * to mount. */
const struct attempt_mount *allowlist_entry(const struct runner *r,
                                            const char *source,
                                            char real[PATH_MAX]);
/* A mount is read-only when the job asks so or the entry does not say
 * "readonly": false. */
bool allowlist_readonly(const struct attempt_mount *entry, bool job_readonly);

#endif
