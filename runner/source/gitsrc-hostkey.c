/* gitsrc-hostkey.c: check an SSH server's host key against a known_hosts file
 * (OpenSSH format: plain or hashed host names, "[host]:port" for ports
 * other than 22).  An unknown host or a changed key is refused. */
#include "runner/source/source.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KNOWN_HOSTS_MAX (4 << 20)

/* Decode base64 text into a heap buffer; -1 on bad input. */
static int b64_decode(const char *in, size_t n, unsigned char **out,
                      size_t *out_len)
{
	unsigned char *buf = xcalloc(1, n + 3);
	int len, pad = 0;

	if (n == 0 || n % 4 != 0) {
		free(buf);
		return -1;
	}
	len = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
	if (len < 0) {
		free(buf);
		return -1;
	}
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	*out = buf;
	*out_len = (size_t)len - (size_t)pad;
	return 0;
}

/* "|1|salt|hash": HMAC-SHA1(salt, name) == hash. */
static bool hashed_match(const char *pat, size_t n, const char *name)
{
	unsigned char *salt = NULL, *hash = NULL, mac[EVP_MAX_MD_SIZE];
	size_t salt_len, hash_len;
	unsigned int mac_len = 0;
	const char *s = pat + 3, *bar = memchr(s, '|', n - 3);
	bool ok = false;

	if (bar == NULL ||
	    b64_decode(s, (size_t)(bar - s), &salt, &salt_len) < 0 ||
	    b64_decode(bar + 1, n - (size_t)(bar + 1 - pat), &hash, &hash_len) <
	        0)
		goto out;
	if (HMAC(EVP_sha1(), salt, (int)salt_len, (const unsigned char *)name,
	         strlen(name), mac, &mac_len) == NULL)
		goto out;
	ok = mac_len == hash_len && memcmp(mac, hash, hash_len) == 0;
out:
	free(salt);
	free(hash);
	return ok;
}

/* Does the comma-separated pattern list match name? */
static bool hosts_match(const char *list, size_t len, const char *name)
{
	const char *p = list, *end = list + len;

	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		size_t n = c ? (size_t)(c - p) : (size_t)(end - p);
		if (n > 3 && strncmp(p, "|1|", 3) == 0) {
			if (hashed_match(p, n, name))
				return true;
		} else if (n == strlen(name) && strncmp(p, name, n) == 0) {
			return true;
		}
		p += n + 1;
	}
	return false;
}

/* Next whitespace-separated field of *s (NUL-terminated in place). */
static char *kh_field(char **s)
{
	char *p = *s, *start;

	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	if (*p == '\0')
		return NULL;
	start = p;
	while (*p && *p != ' ' && *p != '\t' && *p != '\r')
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return start;
}

/* Split a known_hosts line into hosts, key type and base64 key. */
static int kh_split(char *line, char **hosts, char **type, char **key)
{
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '#' || *line == '\0' || *line == '@')
		return -1; /* comments, @cert-authority, @revoked */
	*hosts = kh_field(&line);
	*type = kh_field(&line);
	*key = kh_field(&line);
	return *hosts && *type && *key ? 0 : -1;
}

int gitsrc_hostkey_check(const char *known_hosts, const char *host, int port,
                         const void *key, size_t key_len, struct err *e)
{
	char *text = NULL, *line, *next, name[300];
	size_t len, lineno = 0;
	bool seen = false;
	int rc;

	if (port > 0 && port != 22)
		snprintf(name, sizeof(name), "[%s]:%d", host, port);
	else
		snprintf(name, sizeof(name), "%s", host);
	if ((rc = file_read_all(known_hosts, KNOWN_HOSTS_MAX, &text, &len, e)) <
	    0)
		return err_wrap(e, "known_hosts");
	for (line = text; line; line = next) {
		char *hosts, *type, *b64;
		unsigned char *blob = NULL;
		size_t blob_len = 0;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (kh_split(line, &hosts, &type, &b64) < 0 ||
		    !hosts_match(hosts, strlen(hosts), name))
			continue;
		seen = true;
		if (b64_decode(b64, strlen(b64), &blob, &blob_len) == 0 &&
		    blob_len == key_len && memcmp(blob, key, key_len) == 0) {
			free(blob);
			free(text);
			return 0;
		}
		free(blob);
	}
	free(text);
	if (seen)
		return err_set(e, TERR_AUTH,
		               "host key of %s does not match %s (the key "
		               "changed: refusing)",
		               name, known_hosts);
	return err_set(e, TERR_AUTH,
	               "unknown host %s: its key is not in %s (add it, e.g. "
	               "with ssh-keyscan, after checking it)",
	               name, known_hosts);
}
