#include "common/buf.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

static int buf_reserve(struct buf *b, size_t extra, struct err *e)
{
	size_t need = b->len + extra + 1, size;
	char *p;

	if (extra > b->max || b->len + extra > b->max)
		return err_set(e, TERR_TOOBIG, "more than %zu bytes", b->max);
	if (need <= b->size)
		return 0;
	size = b->size ? b->size : 256;
	while (size < need)
		size *= 2;
	p = realloc(b->data, size);
	if (p == NULL)
		return err_set(e, TERR_NOMEM, "out of memory");
	b->data = p;
	b->size = size;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t len, struct err *e)
{
	int r;

	if ((r = buf_reserve(b, len, e)) < 0)
		return r;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int buf_printf(struct buf *b, struct err *e, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return err_set(e, TERR_INVAL, "bad format");
	if ((r = buf_reserve(b, (size_t)n, e)) < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data != NULL)
		b->data[b->len] = '\0';
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->size = 0;
}

char *buf_steal(struct buf *b)
{
	char *p = b->data;

	if (p == NULL)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = b->size = 0;
	return p;
}
