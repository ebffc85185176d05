/* buf.h: a growable byte buffer with a hard cap (for data from the network
 * or from a job).  Appending past the cap fails with TERR_TOOBIG. */
#ifndef TETHER_BUF_H
#define TETHER_BUF_H

#include <stddef.h>

struct err;

struct buf {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t size;
	size_t max;
};

void buf_init(struct buf *b, size_t max);
int buf_append(struct buf *b, const void *data, size_t len, struct err *e);
int buf_printf(struct buf *b, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);
/* Take ownership of the data (NUL-terminated); the buffer is reset. */
char *buf_steal(struct buf *b);

#endif
