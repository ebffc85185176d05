/* mask.h: streaming secret masker for the job log.
 *
 * Every occurrence of a secret value in the byte stream becomes "***", also
 * when the secret arrives split across two or more feeds: the masker holds
 * back a tail of at most (longest secret - 1) bytes that could still be the
 * start of a secret. */
#ifndef TETHER_MASK_H
#define TETHER_MASK_H

#include <stddef.h>

struct err;
struct mask;

#define MASK_TEXT "***"

/* Emit masked bytes; return 0 or a negative TERR_* to stop. */
typedef int (*mask_sink)(void *arg, const char *data, size_t len,
                         struct err *e);

/* secrets: NULL-terminated list of values (empty ones are ignored); the
 * masker copies them.  No secrets: bytes pass through untouched. */
struct mask *mask_new(const char *const *secrets);
/* Feed bytes; masked output goes to sink (maybe less than fed: the
 * possible prefix of a secret is held back until more bytes come). */
int mask_feed(struct mask *m, const char *data, size_t len, mask_sink sink,
              void *arg, struct err *e);
/* End of stream: emit what was held back (masking full matches). */
int mask_finish(struct mask *m, mask_sink sink, void *arg, struct err *e);
void mask_free(struct mask *m);

#endif
