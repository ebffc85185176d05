/* outputs.h: listing the files a job left under its outputs directory.
 *
 * Walks the directory without following any symlink (openat with
 * O_NOFOLLOW | O_DIRECTORY, fstatat with AT_SYMLINK_NOFOLLOW); regular
 * files are listed with a normalised relative path, size and sha256.
 * Symlinks (out of the directory or not), special files and unsafe names
 * are refused and reported with the reason. */
#ifndef TETHER_OUTPUTS_H
#define TETHER_OUTPUTS_H

#include <jansson.h>

struct err;

#define OUTPUTS_MAX_FILES 100000
#define OUTPUTS_MAX_DEPTH 64

/* Fill *files with [{path,size,sha256}] and *refused with [{path,why}]. */
int outputs_list(const char *dir, json_t **files, json_t **refused,
                 struct err *e);

#endif
