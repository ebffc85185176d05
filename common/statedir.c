#include "common/statedir.h"
#include "common/err.h"
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

bool path_is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == 0);
}

int statedir_mask(const char *state_dir, const char *keep, bool keep_rw,
                  struct err *e)
{
	char src[64];
	int fd = -1, r = 0;

	if (keep != NULL && !path_is_under(keep, state_dir))
		keep = NULL; /* nothing of ours to keep visible */
	if (keep != NULL &&
	    (fd = open(keep, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return err_sys(e, TERR_IO, "open %s", keep);
	if (mount("tether-statedir", state_dir, "tmpfs",
	          MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0) {
		r = err_sys(e, TERR_IO, "hide %s", state_dir);
		goto out;
	}
	if (keep != NULL) {
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
		if ((r = mkdir_p(keep, 0755, e)) < 0)
			goto out;
		if (mount(src, keep, NULL, MS_BIND | MS_REC, NULL) < 0) {
			r = err_sys(e, TERR_IO, "bind %s", keep);
			goto out;
		}
		if (!keep_rw && mount(NULL, keep, NULL,
		                      MS_REMOUNT | MS_BIND | MS_RDONLY |
		                          MS_NOSUID | MS_NODEV,
		                      NULL) < 0) {
			r = err_sys(e, TERR_IO, "read-only %s", keep);
			goto out;
		}
	}
	if (mount(NULL, state_dir, NULL,
	          MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          "mode=0755,size=64k") < 0)
		r = err_sys(e, TERR_IO, "read-only %s", state_dir);
out:
	if (fd >= 0)
		close(fd);
	return r;
}
