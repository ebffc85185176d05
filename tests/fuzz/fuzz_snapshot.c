/* fuzz_snapshot.c: snapshot extraction (runner/source/snapshot.c), which
 * unpacks a tar (gzip or plain) the workspace stored for a job into the work
 * directory, running as root.
 *
 * Promise checked: whatever the archive, nothing is created outside the
 * target directory (the directory next to it stays exactly as it was), and
 * no symlink left inside points out of it. */
#include "common/err.h"
#include "runner/source/source.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static char top[PATH_MAX], work[PATH_MAX + 8];

static void setup(void)
{
	char sentinel[PATH_MAX + 16];
	int fd;

	if (top[0] != '\0')
		return;
	snprintf(top, sizeof(top), "/tmp/fuzz-snapshot.%d", (int)getpid());
	snprintf(work, sizeof(work), "%s/w", top);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", top);
	if (mkdir(top, 0700) < 0 || mkdir(work, 0700) < 0)
		abort();
	if ((fd = open(sentinel, O_WRONLY | O_CREAT, 0600)) < 0)
		abort();
	close(fd);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	if (f->level > 0)
		remove(p);
	return 0;
}

/* Every link inside work must resolve inside work (or dangle inside). */
static int check_one(const char *p, const struct stat *st, int flag,
                     struct FTW *f)
{
	char target[PATH_MAX], buf[2 * PATH_MAX + 2];
	ssize_t n;

	if (flag != FTW_SL)
		return 0;
	if ((n = readlink(p, target, sizeof(target) - 1)) < 0)
		return 0;
	target[n] = '\0';
	if (target[0] == '/')
		abort();
	snprintf(buf, sizeof(buf), "%s/../%s", p, target);
	/* Count depth: a ".." walk may not climb above work. */
	{
		int depth = 0;
		const char *rel = p + strlen(work);
		for (const char *c = rel; *c; c++)
			if (*c == '/')
				depth++;
		depth--; /* the link's own name */
		for (char *s = target, *save = NULL, *tok;
		     (tok = strtok_r(s, "/", &save)) != NULL; s = NULL) {
			if (strcmp(tok, "..") == 0)
				depth--;
			else if (strcmp(tok, ".") != 0)
				depth++;
			if (depth < 0)
				abort();
		}
	}
	return 0;
}

static void check_outside(void)
{
	DIR *d = opendir(top);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		abort();
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (strcmp(de->d_name, "w") != 0 &&
		    strcmp(de->d_name, "sentinel") != 0)
			abort(); /* something escaped the work directory */
		n++;
	}
	closedir(d);
	if (n != 2)
		abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct snapshot_limits lim = {.max_entries = 200, .max_bytes = 4 << 20};
	struct err e = {0};
	char path[64];
	int fd = memfd_create("snap", MFD_CLOEXEC);

	setup();
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	(void)snapshot_extract(path, work, &lim, &e);
	close(fd);
	check_outside();
	nftw(work, check_one, 16, FTW_PHYS);
	nftw(work, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
