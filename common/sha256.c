#include "common/sha256.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

struct sha256_ctx {
	EVP_MD_CTX *md;
};

struct sha256_ctx *sha256_new(void)
{
	struct sha256_ctx *c = malloc(sizeof(*c));

	if (c == NULL || (c->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		abort();
	return c;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
	EVP_DigestUpdate(c->md, data, len);
}

void sha256_final(struct sha256_ctx *c, char out[SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;

	EVP_DigestFinal_ex(c->md, md, &n);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	EVP_MD_CTX_free(c->md);
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
