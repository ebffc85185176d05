/* mask.c: streaming secret masker (see mask.h). */
#include "runner/mask.h"
#include "common/err.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MASK_CHUNK 65536

struct mask {
	char **secrets;
	size_t *lens;
	size_t n, max_len;
	bool first[256]; /* bytes that start some secret */
	char *tail;      /* held back bytes, < max_len */
	size_t tail_len;
	char *scratch; /* tail + one chunk */
};

struct mask *mask_new(const char *const *secrets)
{
	struct mask *m = xcalloc(1, sizeof(*m));
	size_t count = 0;

	while (secrets != NULL && secrets[count] != NULL)
		count++;
	m->secrets = xcalloc(count + 1, sizeof(char *));
	m->lens = xcalloc(count + 1, sizeof(size_t));
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(secrets[i]);
		if (len == 0)
			continue;
		m->secrets[m->n] = xstrdup(secrets[i]);
		m->lens[m->n++] = len;
		m->first[(unsigned char)secrets[i][0]] = true;
		if (len > m->max_len)
			m->max_len = len;
	}
	if (m->n > 0) {
		m->tail = xcalloc(1, m->max_len);
		m->scratch = xcalloc(1, m->max_len + MASK_CHUNK);
	}
	return m;
}

void mask_free(struct mask *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		freezero_str(m->secrets[i]);
	free(m->secrets);
	free(m->lens);
	if (m->tail != NULL)
		freezero(m->tail, m->max_len);
	if (m->scratch != NULL)
		freezero(m->scratch, m->max_len + MASK_CHUNK);
	free(m);
}

/* Length of the longest secret matching in full at p (0: none). */
static size_t full_match(const struct mask *m, const char *p, size_t avail)
{
	size_t best = 0;

	for (size_t i = 0; i < m->n; i++)
		if (m->lens[i] <= avail && m->lens[i] > best &&
		    memcmp(p, m->secrets[i], m->lens[i]) == 0)
			best = m->lens[i];
	return best;
}

/* True when the avail bytes at p (the end of the data) are a proper
 * prefix of some secret longer than them. */
static bool partial_match(const struct mask *m, const char *p, size_t avail)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->lens[i] > avail && memcmp(p, m->secrets[i], avail) == 0)
			return true;
	return false;
}

/* Mask data[0..n): emit what is final, keep the rest in the tail. */
static int mask_scan(struct mask *m, const char *data, size_t n, bool final,
                     mask_sink sink, void *arg, struct err *e)
{
	size_t i = 0, start = 0, len;
	int r;

	while (i < n) {
		if (!m->first[(unsigned char)data[i]]) {
			i++;
			continue;
		}
		if (!final && n - i < m->max_len &&
		    partial_match(m, data + i, n - i))
			break;
		if ((len = full_match(m, data + i, n - i)) == 0) {
			i++;
			continue;
		}
		if ((i > start &&
		     (r = sink(arg, data + start, i - start, e)) < 0) ||
		    (r = sink(arg, MASK_TEXT, strlen(MASK_TEXT), e)) < 0)
			return r;
		i += len;
		start = i;
	}
	if (i > start && (r = sink(arg, data + start, i - start, e)) < 0)
		return r;
	m->tail_len = n - i;
	memmove(m->tail, data + i, m->tail_len);
	return 0;
}

int mask_feed(struct mask *m, const char *data, size_t len, mask_sink sink,
              void *arg, struct err *e)
{
	int r;

	if (m->n == 0)
		return len > 0 ? sink(arg, data, len, e) : 0;
	while (len > 0) {
		size_t take = len < MASK_CHUNK ? len : MASK_CHUNK;
		size_t n = m->tail_len + take;

		memcpy(m->scratch, m->tail, m->tail_len);
		memcpy(m->scratch + m->tail_len, data, take);
		m->tail_len = 0;
		if ((r = mask_scan(m, m->scratch, n, false, sink, arg, e)) < 0)
			return r;
		data += take;
		len -= take;
	}
	return 0;
}

int mask_finish(struct mask *m, mask_sink sink, void *arg, struct err *e)
{
	size_t n = m->tail_len;

	if (m->n == 0 || n == 0)
		return 0;
	memcpy(m->scratch, m->tail, n);
	m->tail_len = 0;
	return mask_scan(m, m->scratch, n, true, sink, arg, e);
}
