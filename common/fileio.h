/* fileio.h: atomic writes, bounded reads, directories. */
#ifndef TETHER_FILEIO_H
#define TETHER_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;

/* Write data to path atomically: temp file in the same directory, fsync,
 * rename over path, fsync the directory.  Readers see old or new, never
 * a mix, even after a crash. */
int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, struct err *e);
/* The same without either fsync: atomic (readers, and a reader after a
 * process crash, see old or new) but not durable (after a power loss the
 * old content, or none, may be back).  For state that a later write
 * supersedes and that nobody relies on across a reboot. */
int file_replace(const char *path, const void *data, size_t len, mode_t mode,
                 struct err *e);
/* Read a whole file of at most cap bytes into a NUL-terminated heap buffer. */
int file_read_all(const char *path, size_t cap, char **out, size_t *out_len,
                  struct err *e);
/* Append all of data to fd, retrying short writes and EINTR. */
int fd_write_all(int fd, const void *data, size_t len, struct err *e);
/* Write all of data at offset off (pwrite), retrying short writes and
 * EINTR. */
int fd_pwrite_all(int fd, const void *data, size_t len, int64_t off,
                  struct err *e);
/* Read exactly len bytes at offset off (pread), retrying short reads and
 * EINTR.  0, or -1 with errno set (EIO where the file ends first). */
int fd_pread_all(int fd, void *buf, size_t len, int64_t off);
/* mkdir -p with mode for each created component. */
int mkdir_p(const char *path, mode_t mode, struct err *e);
/* fsync a directory (after creating or renaming entries in it). */
int dir_fsync(const char *dir, struct err *e);
/* rm -rf without following symlinks; missing path is success. */
int rm_rf(const char *path, struct err *e);

#endif
