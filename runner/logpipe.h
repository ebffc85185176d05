/* logpipe.h: the job's output pipe into the attempt's log file.
 *
 * One bounded buffer: a read from the job's pipe is masked and written to
 * the log in full before the next read, so a job that writes faster than
 * the disk blocks on its full pipe (backpressure) and no byte is dropped.
 * Past max_bytes the log gets one truncation marker and the rest of the
 * output is read and discarded (the job is never blocked forever). */
#ifndef TETHER_LOGPIPE_H
#define TETHER_LOGPIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct mask;

#define LOGPIPE_BUF 65536

struct logpipe {
	int log_fd;        /* O_APPEND log file (not owned) */
	struct mask *mask; /* not owned */
	int64_t written;   /* bytes written to the log by this pipe */
	int64_t max_bytes; /* 0: no cap */
	bool truncated;
	char buf[LOGPIPE_BUF];
};

void logpipe_init(struct logpipe *lp, int log_fd, struct mask *mask,
                  int64_t max_bytes);
/* Write bytes through the masker into the log (honours the cap). */
int logpipe_write(struct logpipe *lp, const char *data, size_t len,
                  struct err *e);
/* One read from fd (non-blocking or readable) into the log.  *eof is set
 * at end of stream (the held-back tail is then flushed). */
int logpipe_pump(struct logpipe *lp, int fd, bool *eof, struct err *e);
/* Flush the masker's held-back tail (end of stream). */
int logpipe_finish(struct logpipe *lp, struct err *e);

#endif
