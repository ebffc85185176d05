/* ssh-tunnel-hostkey.c: is this the server we mean?  The server's host key
 * is looked up in an OpenSSH known_hosts file (libssh2_knownhost_*):
 *   known and equal   → accepted;
 *   host known, key differs (of the same or another type) → always refused,
 *                       naming both fingerprints (a changed key is either
 *                       a reinstalled server or an attacker: a human
 *                       decides, by editing known_hosts);
 *   host unknown      → refused, naming the fingerprint, unless the admin
 *                       pinned exactly that SHA256 fingerprint.
 * Fingerprints are printed as OpenSSH does ("SHA256:" + unpadded base64),
 * so they compare with `ssh-keygen -lf`. */
#include "transport/ssh-tunnel-int.h"

#include "common/err.h"
#include "common/sha256.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Unpadded base64 of n bytes into out (at least 4*(n+2)/3+1 bytes). */
static void b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i < n; i += 3) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64chars[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64chars[v & 63];
	}
	out[o] = '\0';
}

/* Decode base64 (padding optional) into a fresh buffer; -1 on bad input. */
static int b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
	size_t n = strlen(in), o = 0, i;
	unsigned char *buf = malloc(n * 3 / 4 + 3);
	uint32_t v = 0;
	int bits = 0;

	if (buf == NULL)
		return -1;
	for (i = 0; i < n && in[i] != '='; i++) {
		const char *p = strchr(b64chars, in[i]);
		if (p == NULL || in[i] == '\0') {
			free(buf);
			return -1;
		}
		v = (v << 6) | (uint32_t)(p - b64chars);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(v >> bits);
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
}

void ssh_fingerprint(const unsigned char *blob, size_t len,
                     char out[SSH_FP_LEN])
{
	char hex[SHA256_HEX_LEN + 1];
	unsigned char raw[32];
	int i;

	sha256_hex(blob, len, hex);
	for (i = 0; i < 32; i++) {
		unsigned int b;
		sscanf(hex + 2 * i, "%2x", &b);
		raw[i] = (unsigned char)b;
	}
	memcpy(out, "SHA256:", 7);
	b64_encode(raw, sizeof(raw), out + 7);
}

/* Fingerprint of a known_hosts entry's key (stored as base64). */
static void entry_fingerprint(const struct libssh2_knownhost *k,
                              char out[SSH_FP_LEN])
{
	unsigned char *blob = NULL;
	size_t len = 0;

	if (k == NULL || k->key == NULL || b64_decode(k->key, &blob, &len) < 0)
		snprintf(out, SSH_FP_LEN, "(unreadable)");
	else
		ssh_fingerprint(blob, len, out);
	free(blob);
}

static int kh_load(const char *path, LIBSSH2_SESSION *s,
                   LIBSSH2_KNOWNHOSTS **out, struct err *e)
{
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);

	*out = NULL;
	if (kh == NULL)
		return err_set(e, TERR_NOMEM, "libssh2_knownhost_init failed");
	if (path != NULL && access(path, F_OK) == 0 &&
	    libssh2_knownhost_readfile(kh, path,
	                               LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
		libssh2_knownhost_free(kh);
		return err_set(e, TERR_INVAL,
		               "known_hosts file '%s': cannot "
		               "parse it (OpenSSH format expected)",
		               path);
	}
	*out = kh;
	return 0;
}

static const char *type_algos(int type)
{
	switch (type & LIBSSH2_KNOWNHOST_KEY_MASK) {
	case LIBSSH2_KNOWNHOST_KEY_ED25519:
		return "ssh-ed25519";
	case LIBSSH2_KNOWNHOST_KEY_ECDSA_256:
		return "ecdsa-sha2-nistp256";
	case LIBSSH2_KNOWNHOST_KEY_ECDSA_384:
		return "ecdsa-sha2-nistp384";
	case LIBSSH2_KNOWNHOST_KEY_ECDSA_521:
		return "ecdsa-sha2-nistp521";
	case LIBSSH2_KNOWNHOST_KEY_SSHRSA:
		return "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
	default:
		return NULL;
	}
}

/* Does entry k apply to t?  Asking libssh2 to check the entry's own key
 * against the host name also works for hashed (|1|salt|hash) names. */
static int entry_matches(LIBSSH2_KNOWNHOSTS *kh, struct libssh2_knownhost *k,
                         const struct ssh_target *t)
{
	int mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN |
	           LIBSSH2_KNOWNHOST_KEYENC_BASE64 |
	           (k->typemask & LIBSSH2_KNOWNHOST_KEY_MASK);

	return libssh2_knownhost_checkp(kh, t->host, t->port, k->key,
	                                strlen(k->key), mask,
	                                NULL) == LIBSSH2_KNOWNHOST_CHECK_MATCH;
}

int ssh_hostkey_prefs(const char *known_hosts, const struct ssh_target *t,
                      char **out, struct err *e)
{
	LIBSSH2_SESSION *s = libssh2_session_init();
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	struct libssh2_knownhost *k = NULL;
	char list[512] = "";
	size_t len = 0;
	int r;

	*out = NULL;
	if (s == NULL)
		return err_set(e, TERR_NOMEM, "libssh2_session_init failed");
	if ((r = kh_load(known_hosts, s, &kh, e)) < 0)
		goto out;
	while (libssh2_knownhost_get(kh, &k, k) == 0) {
		const char *a = type_algos(k->typemask);
		if (a == NULL || k->key == NULL || strstr(list, a) != NULL ||
		    !entry_matches(kh, k, t))
			continue;
		if (len + strlen(a) + 2 < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len,
			                        "%s%s", len ? "," : "", a);
	}
	if (list[0] != '\0')
		*out = xstrdup(list);
out:
	if (kh != NULL)
		libssh2_knownhost_free(kh);
	libssh2_session_free(s);
	return r;
}

static int key_type_mask(int hostkey_type)
{
	switch (hostkey_type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default:
		return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
	}
}

/* True when the pinned text names fingerprint fp ('=' padding optional). */
static int pin_matches(const char *pin, const char *fp)
{
	size_t n;

	if (pin == NULL || strncmp(pin, "SHA256:", 7) != 0)
		return 0;
	n = strcspn(pin, "=");
	return n == strlen(fp) && strncmp(pin, fp, n) == 0 &&
	       strspn(pin + n, "=") == strlen(pin + n);
}

/* Look the key up: first with its type, then ignoring the type, so a
 * known key of another type counts as a changed key, not an unknown one. */
static int kh_check(LIBSSH2_KNOWNHOSTS *kh, const struct ssh_target *t,
                    const char *key, size_t len, int type,
                    struct libssh2_knownhost **known)
{
	int base = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW;
	int rc;

	rc = libssh2_knownhost_checkp(kh, t->host, t->port, key, len,
	                              base | key_type_mask(type), known);
	if (rc == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
		rc = libssh2_knownhost_checkp(kh, t->host, t->port, key, len,
		                              base, known);
	return rc;
}

/* The fingerprint of the first known key listed for t. */
static void known_fingerprint(LIBSSH2_KNOWNHOSTS *kh,
                              const struct ssh_target *t, char out[SSH_FP_LEN])
{
	struct libssh2_knownhost *k = NULL;

	while (libssh2_knownhost_get(kh, &k, k) == 0) {
		if (k->key != NULL && entry_matches(kh, k, t)) {
			entry_fingerprint(k, out);
			return;
		}
	}
	snprintf(out, SSH_FP_LEN, "(unknown)");
}

static int verdict(int rc, const struct ssh_tunnel_opts *o,
                   LIBSSH2_KNOWNHOSTS *kh, const struct ssh_target *t,
                   const char *fp, struct err *e)
{
	const char *kf = o->known_hosts ? o->known_hosts : "(none)";
	char kfp[SSH_FP_LEN];

	switch (rc) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return 0;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		known_fingerprint(kh, t, kfp);
		return err_set(
		    e, TERR_AUTH,
		    "HOST KEY CHANGED: the server presented %s but "
		    "known_hosts '%s' has %s for it; refusing (if the "
		    "server was really reinstalled, replace its line "
		    "in that file)",
		    fp, kf, kfp);
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		if (pin_matches(o->pinned_fingerprint, fp))
			return 0;
		if (o->pinned_fingerprint != NULL)
			return err_set(e, TERR_AUTH,
			               "unknown host key %s does not match the "
			               "pinned fingerprint %s; refusing",
			               fp, o->pinned_fingerprint);
		return err_set(
		    e, TERR_AUTH,
		    "unknown host key %s (not in known_hosts '%s'); "
		    "refusing before authentication: add the "
		    "server's key to that file (ssh-keyscan), or pin "
		    "this fingerprint in the config",
		    fp, kf);
	default:
		return err_set(e, TERR_AUTH, "host key check failed for %s",
		               fp);
	}
}

int ssh_hostkey_verify(LIBSSH2_SESSION *s, const struct ssh_tunnel_opts *o,
                       const struct ssh_target *t, char fp[SSH_FP_LEN],
                       struct err *e)
{
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	struct libssh2_knownhost *known = NULL;
	const char *key;
	size_t len = 0;
	int type = 0, r;

	key = libssh2_session_hostkey(s, &len, &type);
	if (key == NULL)
		return err_set(e, TERR_PROTO, "server sent no host key");
	ssh_fingerprint((const unsigned char *)key, len, fp);
	if ((r = kh_load(o->known_hosts, s, &kh, e)) < 0)
		return r;
	r = verdict(kh_check(kh, t, key, len, type, &known), o, kh, t, fp, e);
	libssh2_knownhost_free(kh);
	return r;
}
