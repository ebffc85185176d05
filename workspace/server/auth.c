/* auth.c: credentials: random tokens, their stored hashes, name checks. */
#include "workspace/server/ws.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/util.h"

#include <string.h>
#include <sys/random.h>

/* prefix + 48 hex characters (192 random bits). */
void auth_new_token(const char *prefix, char *out, size_t size)
{
	unsigned char raw[24];
	size_t n = 0;
	static const char hex[] = "0123456789abcdef";

	while (n < sizeof(raw)) {
		ssize_t got = getrandom(raw + n, sizeof(raw) - n, 0);
		if (got < 0)
			fatal("getrandom");
		n += (size_t)got;
	}
	n = (size_t)snprintf(out, size, "%s", prefix);
	for (size_t i = 0; i < sizeof(raw) && n + 2 < size; i++) {
		out[n++] = hex[raw[i] >> 4];
		out[n++] = hex[raw[i] & 15];
	}
	out[n] = '\0';
	explicit_bzero(raw, sizeof(raw));
}

void auth_hash(const char *token, char out[65])
{
	sha256_hex(token, strlen(token), out);
}

/* Agent names: 1..max bytes of [A-Za-z0-9._-], not starting with '.' or '-'.
 */
bool auth_valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}
