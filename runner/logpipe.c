/* logpipe.c: job output -> masker -> log file (see logpipe.h). */
#include "runner/logpipe.h"
#include "common/err.h"
#include "common/fileio.h"
#include "runner/mask.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void logpipe_init(struct logpipe *lp, int log_fd, struct mask *mask,
                  int64_t max_bytes)
{
	lp->log_fd = log_fd;
	lp->mask = mask;
	lp->written = 0;
	lp->max_bytes = max_bytes;
	lp->truncated = false;
}

/* The masker's sink: append to the log up to the cap. */
static int logpipe_sink(void *arg, const char *data, size_t len, struct err *e)
{
	struct logpipe *lp = arg;
	char marker[128];
	int n, r;

	if (lp->truncated)
		return 0;
	if (lp->max_bytes > 0 && lp->written + (int64_t)len > lp->max_bytes) {
		size_t room = (size_t)(lp->max_bytes - lp->written);
		if (room > 0 &&
		    (r = fd_write_all(lp->log_fd, data, room, e)) < 0)
			return r;
		lp->written += (int64_t)room;
		lp->truncated = true;
		n = snprintf(marker, sizeof(marker),
		             "\n[tether] log truncated at %" PRId64
		             " bytes (max_log_bytes)\n",
		             lp->max_bytes);
		return fd_write_all(lp->log_fd, marker, (size_t)n, e);
	}
	if ((r = fd_write_all(lp->log_fd, data, len, e)) < 0)
		return r;
	lp->written += (int64_t)len;
	return 0;
}

int logpipe_write(struct logpipe *lp, const char *data, size_t len,
                  struct err *e)
{
	if (lp->mask == NULL)
		return logpipe_sink(lp, data, len, e);
	return mask_feed(lp->mask, data, len, logpipe_sink, lp, e);
}

int logpipe_finish(struct logpipe *lp, struct err *e)
{
	if (lp->mask == NULL)
		return 0;
	return mask_finish(lp->mask, logpipe_sink, lp, e);
}

int logpipe_pump(struct logpipe *lp, int fd, bool *eof, struct err *e)
{
	ssize_t n;

	*eof = false;
	n = read(fd, lp->buf, sizeof(lp->buf));
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		return err_sys(e, TERR_IO, "read job output");
	}
	if (n == 0) {
		*eof = true;
		return logpipe_finish(lp, e);
	}
	return logpipe_write(lp, lp->buf, (size_t)n, e);
}
