/* sha256.c: SHA-256 through libcrypto's one-shot digest functions, not
 * EVP: an EVP digest's first use initialises the library (reads
 * openssl.cnf, loads the default provider), ≈ 0.8 ms of every runner
 * that hashes an environment key (docs/performance.md, F10); these need
 * no initialisation and use the same assembly (SHA-NI where the CPU has
 * it).  They are deprecated in OpenSSL 3 but kept; the EVP path stays
 * for a libcrypto without them. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "common/sha256.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <unistd.h>

#if OPENSSL_VERSION_MAJOR >= 4 || defined(OPENSSL_NO_DEPRECATED_3_0)
#define SHA256_EVP 1
#endif

struct sha256_ctx {
#ifdef SHA256_EVP
	EVP_MD_CTX *md;
#else
	SHA256_CTX sha;
#endif
};

struct sha256_ctx *sha256_new(void)
{
	struct sha256_ctx *c = malloc(sizeof(*c));

#ifdef SHA256_EVP
	if (c == NULL || (c->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		abort();
#else
	if (c == NULL || SHA256_Init(&c->sha) != 1)
		abort();
#endif
	return c;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
#ifdef SHA256_EVP
	EVP_DigestUpdate(c->md, data, len);
#else
	SHA256_Update(&c->sha, data, len);
#endif
}

void sha256_final(struct sha256_ctx *c, char out[SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];

#ifdef SHA256_EVP
	unsigned int n = 0;

	EVP_DigestFinal_ex(c->md, md, &n);
	EVP_MD_CTX_free(c->md);
#else
	SHA256_Final(md, &c->sha);
#endif
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
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
