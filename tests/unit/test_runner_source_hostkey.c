/* Unit tests of runner/source/gitsrc-hostkey.c: known_hosts matching (plain and
 * hashed names, ports, changed keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"
#include "runner/source/source.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const unsigned char key_a[] =
    "\0\0\0\x0bssh-ed25519 key-a-bytes-0123456789";
static const unsigned char key_b[] =
    "\0\0\0\x0bssh-ed25519 key-b-bytes-9876543210";

static char *b64(const void *data, size_t len)
{
	char *out = xcalloc(1, 4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

/* "|1|salt|hmac" for name, as ssh-keygen -H writes it. */
static char *hashed(const char *name)
{
	unsigned char salt[20], mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char *s, *h, *out;

	memset(salt, 0x5a, sizeof(salt));
	HMAC(EVP_sha1(), salt, sizeof(salt), (const unsigned char *)name,
	     strlen(name), mac, &n);
	s = b64(salt, sizeof(salt));
	h = b64(mac, n);
	out = xasprintf("|1|%s|%s", s, h);
	free(s);
	free(h);
	return out;
}

static char *write_kh(const char *text)
{
	char *path = xstrdup("/tmp/tknownhostsXXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_plain_and_port(void **state)
{
	char *a = b64(key_a, sizeof(key_a) - 1);
	char *text = xasprintf("# comment\n\ngit.example.com,10.0.0.1 "
	                       "ssh-ed25519 %s\n[127.0.0.1]:2222 ssh-ed25519 "
	                       "%s x@y\n",
	                       a, a);
	char *kh = write_kh(text);
	struct err e = {0};

	(void)state;
	assert_int_equal(gitsrc_hostkey_check(kh, "git.example.com", 22, key_a,
	                                      sizeof(key_a) - 1, &e),
	                 0);
	assert_int_equal(gitsrc_hostkey_check(kh, "10.0.0.1", 0, key_a,
	                                      sizeof(key_a) - 1, &e),
	                 0);
	assert_int_equal(gitsrc_hostkey_check(kh, "127.0.0.1", 2222, key_a,
	                                      sizeof(key_a) - 1, &e),
	                 0);
	/* the same host on another port is another host */
	assert_int_equal(gitsrc_hostkey_check(kh, "127.0.0.1", 22, key_a,
	                                      sizeof(key_a) - 1, &e),
	                 TERR_AUTH);
	assert_non_null(strstr(e.msg, "unknown host 127.0.0.1"));
	/* a known host with another key: changed */
	assert_int_equal(gitsrc_hostkey_check(kh, "git.example.com", 22, key_b,
	                                      sizeof(key_b) - 1, &e),
	                 TERR_AUTH);
	assert_non_null(strstr(e.msg, "does not match"));
	unlink(kh);
	free(kh);
	free(text);
	free(a);
}

static void test_hashed(void **state)
{
	char *a = b64(key_a, sizeof(key_a) - 1), *h = hashed("[gh.local]:2200");
	char *text = xasprintf("%s ssh-ed25519 %s\n@revoked * ssh-ed25519 %s\n",
	                       h, a, a);
	char *kh = write_kh(text);
	struct err e = {0};

	(void)state;
	assert_int_equal(gitsrc_hostkey_check(kh, "gh.local", 2200, key_a,
	                                      sizeof(key_a) - 1, &e),
	                 0);
	assert_int_equal(gitsrc_hostkey_check(kh, "gh.local", 22, key_a,
	                                      sizeof(key_a) - 1, &e),
	                 TERR_AUTH);
	assert_int_equal(gitsrc_hostkey_check(kh, "other", 2200, key_a,
	                                      sizeof(key_a) - 1, &e),
	                 TERR_AUTH);
	unlink(kh);
	free(kh);
	free(text);
	free(h);
	free(a);
}

static void test_missing_file(void **state)
{
	struct err e = {0};

	(void)state;
	assert_true(gitsrc_hostkey_check("/nonexistent/known_hosts", "h", 22,
	                                 key_a, sizeof(key_a) - 1, &e) < 0);
	assert_non_null(strstr(e.msg, "known_hosts"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_and_port),
	    cmocka_unit_test(test_hashed),
	    cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
