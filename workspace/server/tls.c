/* tls.c: a self-signed certificate for loopback (127.0.0.1, ::1,
 * localhost), made with libcrypto, for `tether-workspace init`.  It is its
 * own CA (basicConstraints CA:TRUE), so clients pass the certificate file
 * itself as their CA file. */
#include "workspace/server/ws.h"
#include "common/err.h"
#include "common/fileio.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <arpa/inet.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

static EVP_PKEY *make_key(void)
{
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);

	if (c == NULL || EVP_PKEY_keygen_init(c) <= 0 ||
	    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(c, NID_X9_62_prime256v1) <=
	        0 ||
	    EVP_PKEY_keygen(c, &k) <= 0)
		k = NULL;
	EVP_PKEY_CTX_free(c);
	return k;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *k, const char *san)
{
	X509 *x = X509_new();
	X509_NAME *n;
	unsigned char serial[16];
	BIGNUM *bn = NULL;

	if (x == NULL)
		return NULL;
	FILE *ur = fopen("/dev/urandom", "rb");
	if (ur == NULL ||
	    fread(serial, 1, sizeof(serial), ur) != sizeof(serial))
		goto fail;
	fclose(ur);
	ur = NULL;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	X509_set_version(x, 2);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"tether-workspace",
	                           -1, -1, 0);
	X509_set_issuer_name(x, n);
	if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") <
	        0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, NID_authority_key_identifier, "keyid:always") < 0 ||
	    add_ext(x, NID_subject_alt_name, san) < 0 ||
	    X509_sign(x, k, EVP_sha256()) <= 0)
		goto fail;
	BN_free(bn);
	return x;
fail:
	if (ur != NULL)
		fclose(ur);
	BN_free(bn);
	X509_free(x);
	return NULL;
}

/* PEM of a key or certificate into a heap string. */
static char *to_pem(EVP_PKEY *k, X509 *x, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b == NULL)
		return NULL;
	if ((k ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)
	       : PEM_write_bio_X509(b, x)) == 1) {
		n = BIO_get_mem_data(b, &data);
		out = malloc((size_t)n + 1);
		if (out != NULL) {
			memcpy(out, data, (size_t)n);
			out[n] = '\0';
			*len = (size_t)n;
		}
	}
	BIO_free(b);
	return out;
}

int tls_write_selfsigned(const char *cert_path, const char *key_path,
                         struct err *e)
{
	return tls_write_selfsigned_ips(cert_path, key_path, NULL, 0, e);
}

int tls_write_selfsigned_ips(const char *cert_path, const char *key_path,
                             char *const *ips, int nips, struct err *e)
{
	char san[2048] = "IP:127.0.0.1,IP:::1,DNS:localhost";
	size_t off = strlen(san);
	unsigned char buf[sizeof(struct in6_addr)];

	for (int i = 0; i < nips; i++) {
		if (inet_pton(AF_INET, ips[i], buf) != 1 &&
		    inet_pton(AF_INET6, ips[i], buf) != 1)
			return err_set(e, TERR_INVAL,
			               "--tls-ip %s: not an IP address",
			               ips[i]);
		off += (size_t)snprintf(san + off, sizeof(san) - off, ",IP:%s",
		                        ips[i]);
		if (off >= sizeof(san))
			return err_set(e, TERR_INVAL, "--tls-ip: too many");
	}
	EVP_PKEY *k = make_key();
	X509 *x = k ? make_cert(k, san) : NULL;
	char *kp = NULL, *cp = NULL;
	size_t kn = 0, cn = 0;
	int r;

	if (x == NULL || (kp = to_pem(k, NULL, &kn)) == NULL ||
	    (cp = to_pem(NULL, x, &cn)) == NULL) {
		r = err_set(e, TERR_FAIL, "cannot make a TLS certificate");
		goto out;
	}
	if ((r = file_write_atomic(key_path, kp, kn, 0600, e)) < 0 ||
	    (r = file_write_atomic(cert_path, cp, cn, 0644, e)) < 0)
		goto out;
out:
	if (kp != NULL) {
		explicit_bzero(kp, kn);
		free(kp);
	}
	free(cp);
	X509_free(x);
	EVP_PKEY_free(k);
	return r;
}
