/* tb-reader.c: the TensorBoard reader of a job (metrics.tensorboard,
 * docs/metrics.md).
 *
 * It runs inside the job's sandbox, forked by the sandbox's pid 1 and
 * become the job user like the job itself (sandbox-init.c): the event files
 * are the job's, hostile, and no root process opens them.  Every
 * TB_SCAN_MS it looks at the files named *tfevents* in the directory and
 * its subdirectories (one level), reads the records appended since the last
 * look (u64 length, masked CRC-32C of the length, data, masked CRC-32C of
 * the data), decodes each `Event` (protobuf-c, tb-event.proto) and writes
 * one `TETHER_METRIC <tag>=<value> step=<step>` line per scalar summary to
 * the pipe the runner reads, which applies the same checks and caps as to
 * the job's own TETHER_METRIC lines.  A file in a subdirectory prefixes
 * its tags with the subdirectory's name ("train/loss").  Caps: TB_MAX_FILES
 * files, records up to TB_RECORD_MAX bytes (longer ones, images say, are
 * skipped unread), TB_SCAN_BYTES read per look.  SIGTERM (the job ended):
 * one last look, then exit. */
#include "common/fileio.h"
#include "runner/metrics/metric-name.h"
#include "runner/metrics/tb-reader.h"

#include <tb-event.pb-c.h> /* generated from tb-event.proto */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TB_SCAN_MS    200
#define TB_MAX_FILES  64
#define TB_RECORD_MAX (1024 * 1024)
#define TB_SCAN_BYTES (8 * 1024 * 1024)
#define TB_OUT_BUF    65536

struct tb_file {
	char rel[256];                     /* path under the directory */
	char prefix[METRICS_NAME_MAX + 1]; /* "sub/" or "" */
	ino_t ino;
	off_t off;
	bool bad; /* a corrupt length: not read further */
};

struct tb {
	const char *dir;
	int out_fd;
	struct tb_file files[TB_MAX_FILES];
	size_t nfiles;
	char out[TB_OUT_BUF];
	size_t olen;
	int64_t budget; /* bytes this look may still read */
	uint8_t *rec;   /* TB_RECORD_MAX + 4 */
};

static volatile sig_atomic_t tb_stop;

/* Only pid 1's SIGTERM (the job ended) stops the reader: the job's stop
 * and checkpoint signals go to the whole cgroup, the reader included, while
 * the job may write on for its grace period. */
static void tb_on_term(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_pid == 1)
		tb_stop = 1;
}

static uint32_t crc32c_table[256];

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc32c_table[i] = c;
	}
}

uint32_t tb_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	if (crc32c_table[1] == 0)
		crc32c_init();
	while (n-- > 0)
		c = crc32c_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

uint32_t tb_masked_crc(const uint8_t *p, size_t n)
{
	uint32_t c = tb_crc32c(p, n);

	return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void tb_flush(struct tb *t)
{
	size_t done = 0;

	while (done < t->olen) {
		ssize_t n = write(t->out_fd, t->out + done, t->olen - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0); /* the runner is gone */
		done += (size_t)n;
	}
	t->olen = 0;
}

static void tb_point(struct tb *t, const struct tb_file *f, const char *tag,
                     double v, int64_t step)
{
	char name[METRICS_NAME_MAX + 2];
	int n = snprintf(name, sizeof(name), "%s%s", f->prefix, tag);

	if (n < 0 || (size_t)n >= sizeof(name) ||
	    !metrics_name_ok(name, (size_t)n) || !isfinite(v))
		return;
	if (t->olen + 256 > sizeof(t->out))
		tb_flush(t);
	if (step >= 0)
		n = snprintf(t->out + t->olen, sizeof(t->out) - t->olen,
		             "TETHER_METRIC %s=%.17g step=%" PRId64 "\n", name,
		             v, step);
	else
		n = snprintf(t->out + t->olen, sizeof(t->out) - t->olen,
		             "TETHER_METRIC %s=%.17g\n", name, v);
	if (n > 0 && (size_t)n < sizeof(t->out) - t->olen)
		t->olen += (size_t)n;
}

/* A scalar tensor: one float or double, no dimensions. */
static bool tensor_scalar(const Tether__Tb__TensorProto *tp, double *v)
{
	if (tp == NULL || (tp->tensor_shape != NULL && tp->tensor_shape->n_dim))
		return false;
	if (tp->dtype == 1 && tp->n_float_val == 1)
		*v = tp->float_val[0];
	else if (tp->dtype == 2 && tp->n_double_val == 1)
		*v = tp->double_val[0];
	else if (tp->dtype == 1 && tp->tensor_content.len == 4) {
		float f;
		memcpy(&f, tp->tensor_content.data, 4);
		*v = f;
	} else if (tp->dtype == 2 && tp->tensor_content.len == 8)
		memcpy(v, tp->tensor_content.data, 8);
	else
		return false;
	return true;
}

static void tb_event(struct tb *t, const struct tb_file *f, const uint8_t *data,
                     size_t len)
{
	Tether__Tb__Event *ev = tether__tb__event__unpack(NULL, len, data);
	Tether__Tb__Summary *s;

	if (ev == NULL)
		return;
	s = ev->summary;
	for (size_t i = 0; s != NULL && i < s->n_value; i++) {
		const Tether__Tb__SummaryValue *sv = s->value[i];
		double v;

		if (sv->value_case ==
		    TETHER__TB__SUMMARY_VALUE__VALUE_SIMPLE_VALUE)
			v = sv->simple_value;
		else if (sv->value_case !=
		             TETHER__TB__SUMMARY_VALUE__VALUE_TENSOR ||
		         !tensor_scalar(sv->tensor, &v))
			continue;
		tb_point(t, f, sv->tag, v, ev->step >= 0 ? ev->step : -1);
	}
	tether__tb__event__free_unpacked(ev, NULL);
}

/* Read exactly n bytes at off; false at a short read (not written yet). */
static bool read_at(int fd, void *buf, size_t n, off_t off)
{
	return fd_pread_all(fd, buf, n, (int64_t)off) == 0;
}

/* The complete records of one file past its offset. */
static void tb_read_file(struct tb *t, struct tb_file *f, int fd, off_t size)
{
	uint8_t hdr[12];

	while (!f->bad && t->budget > 0 && f->off + 12 <= size) {
		uint64_t len;

		if (!read_at(fd, hdr, 12, f->off))
			return;
		if (tb_masked_crc(hdr, 8) != le32(hdr + 8)) {
			f->bad = true; /* not a record boundary: give up */
			return;
		}
		len = le64(hdr);
		if (len > (uint64_t)(size - f->off - 12) ||
		    len + 4 > (uint64_t)(size - f->off - 12))
			return;            /* not all written yet */
		if (len > TB_RECORD_MAX) { /* an image, say: skipped */
			f->off += 12 + (off_t)len + 4;
			continue;
		}
		if (!read_at(fd, t->rec, len + 4, f->off + 12))
			return;
		t->budget -= (int64_t)len + 16;
		f->off += 12 + (off_t)len + 4;
		if (tb_masked_crc(t->rec, len) == le32(t->rec + len))
			tb_event(t, f, t->rec, len);
	}
}

static struct tb_file *tb_track(struct tb *t, const char *rel, const char *sub,
                                ino_t ino)
{
	struct tb_file *f;

	for (size_t i = 0; i < t->nfiles; i++)
		if (strcmp(t->files[i].rel, rel) == 0) {
			f = &t->files[i];
			if (f->ino != ino) { /* replaced: from the start */
				f->ino = ino;
				f->off = 0;
				f->bad = false;
			}
			return f;
		}
	if (t->nfiles == TB_MAX_FILES)
		return NULL;
	f = &t->files[t->nfiles++];
	memset(f, 0, sizeof(*f));
	snprintf(f->rel, sizeof(f->rel), "%s", rel);
	if (sub != NULL)
		snprintf(f->prefix, sizeof(f->prefix), "%s/", sub);
	f->ino = ino;
	return f;
}

static void tb_look_file(struct tb *t, int dfd, const char *name,
                         const char *sub)
{
	char rel[256];
	struct tb_file *f;
	struct stat st;
	int fd;

	if (strstr(name, "tfevents") == NULL)
		return;
	if (snprintf(rel, sizeof(rel), "%s%s%s", sub ? sub : "", sub ? "/" : "",
	             name) >= (int)sizeof(rel))
		return;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (f = tb_track(t, rel, sub, st.st_ino)) != NULL)
		tb_read_file(t, f, fd, st.st_size);
	close(fd);
}

/* The files of one directory (sub: its name under the top, or NULL). */
static void tb_look_dir(struct tb *t, int dfd, const char *sub)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (de->d_type == DT_DIR && sub == NULL) {
			int sfd = openat(dirfd(d), de->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			                     O_CLOEXEC);
			if (sfd >= 0 &&
			    strlen(de->d_name) < METRICS_NAME_MAX / 2)
				tb_look_dir(t, sfd, de->d_name);
			else if (sfd >= 0)
				close(sfd);
		} else if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN) {
			tb_look_file(t, dirfd(d), de->d_name, sub);
		}
	}
	closedir(d);
}

static void tb_look(struct tb *t)
{
	int dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	t->budget = TB_SCAN_BYTES;
	if (dfd >= 0)
		tb_look_dir(t, dfd, NULL);
	tb_flush(t);
}

void tb_reader_main(const char *dir, int out_fd)
{
	struct timespec ts = {0, TB_SCAN_MS * 1000000L};
	struct sigaction sa;
	struct tb *t = calloc(1, sizeof(*t));

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = tb_on_term;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	if (t == NULL || (t->rec = malloc(TB_RECORD_MAX + 4)) == NULL)
		_exit(1);
	t->dir = dir;
	t->out_fd = out_fd;
	while (!tb_stop) {
		tb_look(t);
		nanosleep(&ts, NULL);
	}
	tb_look(t); /* what the job wrote last */
	_exit(0);
}
