/* statedir.h: hiding the node's state directory from job processes.
 *
 * The state dir is 0700 and root's (credentials, agent.db, other jobs).
 * A process that runs as the job user but must reach one directory inside
 * it (its environment prefix) calls statedir_mask() in a private mount
 * namespace, while still root: the state dir is replaced by an empty
 * read-only tmpfs, and only `keep` is bound back at its own path, so paths
 * baked into the environment (venv scripts, conda prefixes) stay valid. */
#ifndef TETHER_STATEDIR_H
#define TETHER_STATEDIR_H

#include <stdbool.h>

struct err;

/* keep may be NULL (hide everything) or a path under state_dir. */
int statedir_mask(const char *state_dir, const char *keep, bool keep_rw,
                  struct err *e);
/* True when path lies inside dir (component-wise prefix). */
bool path_is_under(const char *path, const char *dir);

#endif
