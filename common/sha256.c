/* sha256.c: SHA-256 (FIPS 180-4), built in: with the CPU's SHA
 * instructions where it has them (x86-64 SHA-NI, the same instructions
 * libcrypto uses), else portable C.  Not libcrypto's: tether-runner would
 * load libcrypto only for this, and mapping and relocating it costs every
 * job start ≈ 0.7 ms of CPU (docs/performance.md, row 5). */
#include "common/sha256.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SHA256_X86 1
#endif

struct sha256_ctx {
	uint32_t h[8];
	uint64_t total; /* bytes hashed */
	size_t nbuf;    /* bytes waiting in buf */
	unsigned char buf[64];
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The compression function over n 64-byte blocks, in C. */
static void blocks_c(uint32_t h[8], const unsigned char *p, size_t n)
{
	uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;

	for (; n > 0; n--, p += 64) {
		for (int i = 0; i < 16; i++)
			w[i] = be32(p + 4 * i);
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^
			              (w[i - 15] >> 3);
			uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^
			              (w[i - 2] >> 10);
			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		a = h[0], b = h[1], c = h[2], d = h[3];
		e = h[4], f = h[5], g = h[6], hh = h[7];
		for (int i = 0; i < 64; i++) {
			t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
			     ((e & f) ^ (~e & g)) + K[i] + w[i];
			t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
			     ((a & b) ^ (a & c) ^ (b & c));
			hh = g, g = f, f = e, e = d + t1;
			d = c, c = b, b = a, a = t1 + t2;
		}
		h[0] += a, h[1] += b, h[2] += c, h[3] += d;
		h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
	}
}

#ifdef SHA256_X86
/* The same with the SHA extensions: sha256rnds2 does two rounds on the
 * state held as ABEF and CDGH; sha256msg1/msg2 extend the message
 * schedule four words at a time. */
__attribute__((target("sha,sse4.1,ssse3"))) static void
blocks_ni(uint32_t h[8], const unsigned char *p, size_t n)
{
	const __m128i swap =
	    _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i s0, s1, t, abef, cdgh, w[16], m;

	t = _mm_loadu_si128((const __m128i *)&h[0]);  /* DCBA */
	s1 = _mm_loadu_si128((const __m128i *)&h[4]); /* HGFE */
	t = _mm_shuffle_epi32(t, 0xB1);               /* CDAB */
	s1 = _mm_shuffle_epi32(s1, 0x1B);             /* EFGH */
	s0 = _mm_alignr_epi8(t, s1, 8);               /* ABEF */
	s1 = _mm_blend_epi16(s1, t, 0xF0);            /* CDGH */
	for (; n > 0; n--, p += 64) {
		abef = s0;
		cdgh = s1;
		for (int i = 0; i < 16; i++) {
			if (i < 4) {
				w[i] = _mm_shuffle_epi8(
				    _mm_loadu_si128(
				        (const __m128i *)(p + 16 * i)),
				    swap);
			} else {
				/* W[t-16] + s0(W[t-15]), + W[t-7], +
				 * s1(W[t-2]) */
				t = _mm_sha256msg1_epu32(w[i - 4], w[i - 3]);
				t = _mm_add_epi32(
				    t, _mm_alignr_epi8(w[i - 1], w[i - 2], 4));
				w[i] = _mm_sha256msg2_epu32(t, w[i - 1]);
			}
			m = _mm_add_epi32(
			    w[i], _mm_loadu_si128((const __m128i *)&K[4 * i]));
			s1 = _mm_sha256rnds2_epu32(s1, s0, m);
			m = _mm_shuffle_epi32(m, 0x0E);
			s0 = _mm_sha256rnds2_epu32(s0, s1, m);
		}
		s0 = _mm_add_epi32(s0, abef);
		s1 = _mm_add_epi32(s1, cdgh);
	}
	t = _mm_shuffle_epi32(s0, 0x1B);   /* FEBA */
	s1 = _mm_shuffle_epi32(s1, 0xB1);  /* DCHG */
	s0 = _mm_blend_epi16(t, s1, 0xF0); /* DCBA */
	s1 = _mm_alignr_epi8(s1, t, 8);    /* HGFE */
	_mm_storeu_si128((__m128i *)&h[0], s0);
	_mm_storeu_si128((__m128i *)&h[4], s1);
}

static int has_sha_ni(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) ||
	    !(c & bit_SSE4_1))
		return 0;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (b & (1u << 29)) != 0; /* SHA */
}
#endif

typedef void (*blocks_fn)(uint32_t h[8], const unsigned char *p, size_t n);

static blocks_fn impl; /* NULL until the first use picks one */

/* The implementation to use: the SHA instructions unless the CPU lacks
 * them (or sha256_set_impl asked for C). */
static blocks_fn pick(void)
{
	blocks_fn f = __atomic_load_n(&impl, __ATOMIC_RELAXED);

	if (f == NULL) {
		f = blocks_c;
#ifdef SHA256_X86
		if (has_sha_ni())
			f = blocks_ni;
#endif
		__atomic_store_n(&impl, f, __ATOMIC_RELAXED);
	}
	return f;
}

const char *sha256_impl(void)
{
	return pick() == blocks_c ? "c" : "sha-ni";
}

int sha256_set_impl(const char *name)
{
	if (strcmp(name, "c") == 0) {
		__atomic_store_n(&impl, blocks_c, __ATOMIC_RELAXED);
		return 0;
	}
#ifdef SHA256_X86
	if (strcmp(name, "sha-ni") == 0 && has_sha_ni()) {
		__atomic_store_n(&impl, blocks_ni, __ATOMIC_RELAXED);
		return 0;
	}
#endif
	return -1;
}

struct sha256_ctx *sha256_new(void)
{
	static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
	                               0xa54ff53a, 0x510e527f, 0x9b05688c,
	                               0x1f83d9ab, 0x5be0cd19};
	struct sha256_ctx *c = calloc(1, sizeof(*c));

	if (c == NULL)
		abort();
	memcpy(c->h, h0, sizeof(h0));
	return c;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	blocks_fn fn = pick();

	c->total += len;
	if (c->nbuf > 0) {
		size_t k = 64 - c->nbuf < len ? 64 - c->nbuf : len;
		memcpy(c->buf + c->nbuf, p, k);
		c->nbuf += k;
		p += k;
		len -= k;
		if (c->nbuf < 64)
			return;
		fn(c->h, c->buf, 1);
		c->nbuf = 0;
	}
	if (len >= 64) {
		fn(c->h, p, len / 64);
		p += len / 64 * 64;
		len %= 64;
	}
	memcpy(c->buf, p, len);
	c->nbuf = len;
}

void sha256_final(struct sha256_ctx *c, char out[SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t bits = c->total * 8;
	blocks_fn fn = pick();

	c->buf[c->nbuf++] = 0x80;
	if (c->nbuf > 56) {
		memset(c->buf + c->nbuf, 0, 64 - c->nbuf);
		fn(c->h, c->buf, 1);
		c->nbuf = 0;
	}
	memset(c->buf + c->nbuf, 0, 56 - c->nbuf);
	for (int i = 0; i < 8; i++)
		c->buf[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
	fn(c->h, c->buf, 1);
	for (unsigned i = 0; i < 32; i++) {
		unsigned char b =
		    (unsigned char)(c->h[i / 4] >> (24 - 8 * (i % 4)));
		out[2 * i] = hex[b >> 4];
		out[2 * i + 1] = hex[b & 15];
	}
	out[64] = '\0';
	free(c);
}

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
	struct sha256_ctx *c = sha256_new();

	sha256_update(c, data, len);
	sha256_final(c, out);
}

int sha256_file(const char *path, char out[SHA256_HEX_LEN + 1], int64_t *size,
                struct err *e)
{
	struct sha256_ctx *c;
	char buf[65536];
	int64_t total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return err_sys(e, TERR_IO, "open %s", path);
	c = sha256_new();
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = err_sys(e, TERR_IO, "read %s", path);
			sha256_final(c, out);
			close(fd);
			return r;
		}
		if (n == 0)
			break;
		sha256_update(c, buf, (size_t)n);
		total += n;
	}
	close(fd);
	sha256_final(c, out);
	if (size != NULL)
		*size = total;
	return 0;
}
