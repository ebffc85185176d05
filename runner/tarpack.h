/* tarpack.h: a directory tree packed into a gzipped tar (libarchive;
 * tether-runner-full only). Used by checkpoint packing
 * (supervisor/supervisor-pack.c) and the Spark launcher's environment
 * archive (spark/spark-archive.c). */
#ifndef TETHER_RUNNER_TARPACK_H
#define TETHER_RUNNER_TARPACK_H

#include <stdbool.h>
#include <stdint.h>

struct err;

/* Pack the tree at dir into the file path, names relative to dir. The
 * walk never follows a symlink (links are stored as links) nor crosses a
 * mount, and packs only directories, regular files and symlinks (no
 * devices, fifos or sockets). root_owned: entries are stored as uid/gid 0
 * without names. *files counts the regular files packed. */
int tarpack_tree(const char *dir, const char *path, bool root_owned,
                 int64_t *files, struct err *e);

#endif
