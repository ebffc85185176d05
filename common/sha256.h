/* sha256.h: SHA-256 (built in: common/sha256.c), as lowercase hex. */
#ifndef TETHER_SHA256_H
#define TETHER_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct sha256_ctx;

#define SHA256_HEX_LEN 64

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);
/* Hash a file; size (optional) gets its length. */
int sha256_file(const char *path, char out[SHA256_HEX_LEN + 1], int64_t *size,
                struct err *e);
/* Streaming: new, update, final (final frees). */
struct sha256_ctx *sha256_new(void);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_final(struct sha256_ctx *c, char out[SHA256_HEX_LEN + 1]);
/* The implementation in use: "sha-ni" (the CPU's SHA instructions) or
 * "c"; sha256_set_impl picks one (for tests: -1 if this CPU lacks it). */
const char *sha256_impl(void);
int sha256_set_impl(const char *name);

#endif
