/* docker-stream.c: decoding what the engine streams back (multiplexed
 * stdout/stderr frames, JSON-lines progress) and encoding what it wants
 * (registry auth, image references, query strings). */
#include "docker/docker.h"

#include "common/err.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES (1 << 20)

void docker_demux_init(struct docker_demux *dm)
{
	memset(dm, 0, sizeof(*dm));
}

int docker_demux_feed(struct docker_demux *dm, const char *data, size_t len,
                      docker_frame_cb cb, void *arg)
{
	size_t n;
	int r;

	while (len > 0) {
		if (dm->left == 0) {
			n = 8 - dm->hdr_len;
			n = n < len ? n : len;
			memcpy(dm->hdr + dm->hdr_len, data, n);
			dm->hdr_len += n, data += n, len -= n;
			if (dm->hdr_len < 8)
				break;
			dm->stream = dm->hdr[0];
			dm->left = (uint32_t)dm->hdr[4] << 24 |
			           (uint32_t)dm->hdr[5] << 16 |
			           (uint32_t)dm->hdr[6] << 8 | dm->hdr[7];
			dm->hdr_len = 0;
			continue;
		}
		n = dm->left < len ? dm->left : len;
		if ((r = cb(arg, dm->stream, data, n)) < 0)
			return r;
		dm->left -= (uint32_t)n, data += n, len -= n;
	}
	return 0;
}

void docker_lines_init(struct docker_lines *l,
                       int (*cb)(void *arg, json_t *obj, struct err *e),
                       void *arg, struct err *e)
{
	buf_init(&l->b, LINE_MAX_BYTES);
	l->cb = cb;
	l->arg = arg;
	l->e = e;
}

/* Hand one complete line to the callback (blank lines are skipped). */
static int lines_emit(struct docker_lines *l, const char *s, size_t n)
{
	json_t *j;
	int r;

	if (n == 0 || strspn(s, " \r\t") >= n)
		return 0;
	if ((j = json_loadb(s, n, 0, NULL)) == NULL)
		return err_set(l->e, TERR_PROTO,
		               "engine sent a bad progress "
		               "line: %.*s",
		               (int)(n < 200 ? n : 200), s);
	r = l->cb(l->arg, j, l->e);
	json_decref(j);
	return r;
}

int docker_lines_feed(void *lines, const char *data, size_t len)
{
	struct docker_lines *l = lines;
	const char *nl;
	size_t used = 0;
	int r;

	if ((r = buf_append(&l->b, data, len, l->e)) < 0)
		return r;
	while ((nl = memchr(l->b.data + used, '\n', l->b.len - used))) {
		r = lines_emit(l, l->b.data + used,
		               (size_t)(nl - (l->b.data + used)));
		used = (size_t)(nl - l->b.data) + 1;
		if (r < 0)
			return r;
	}
	buf_consume(&l->b, used);
	return 0;
}

void docker_lines_free(struct docker_lines *l)
{
	if (l->b.len > 0)
		lines_emit(l, l->b.data, l->b.len);
	buf_free(&l->b);
}

static char *base64url(const unsigned char *s, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = xcalloc(4 * (n / 3 + 1) + 1, 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v =
		    (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		*o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63];
		*o++ = '=', *o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		*o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63], *o++ = '=';
	}
	return out;
}

char *docker_image_registry(const char *image)
{
	const char *slash = strchr(image, '/');
	size_t n = slash ? (size_t)(slash - image) : 0;

	if (slash != NULL && (memchr(image, '.', n) || memchr(image, ':', n) ||
	                      (n == 9 && strncmp(image, "localhost", 9) == 0)))
		return strndup(image, n);
	return xstrdup("https://index.docker.io/v1/");
}

char *docker_registry_auth(const char *image, const char *user_pass)
{
	const char *colon = user_pass ? strchr(user_pass, ':') : NULL;
	char *user, *server, *js, *out;
	json_t *j;

	if (colon == NULL)
		return NULL;
	user = strndup(user_pass, (size_t)(colon - user_pass));
	server = docker_image_registry(image);
	j = json_pack("{s:s, s:s, s:s}", "username", user, "password",
	              colon + 1, "serveraddress", server);
	/* NULL when a part is not UTF-8 (job specs are, other callers
	 * may not be): no header rather than a crash. */
	js = j ? json_dumps(j, JSON_COMPACT) : NULL;
	out = js ? base64url((const unsigned char *)js, strlen(js)) : NULL;
	if (js)
		freezero_str(js);
	json_decref(j);
	free(user);
	free(server);
	return out;
}

void docker_image_split(const char *image, char **repo, char **tag)
{
	const char *at = strchr(image, '@');
	const char *slash = strrchr(image, '/'), *colon;

	if (at != NULL) {
		*repo = strndup(image, (size_t)(at - image));
		*tag = xstrdup(at + 1);
		return;
	}
	colon = strrchr(slash ? slash : image, ':');
	if (colon != NULL) {
		*repo = strndup(image, (size_t)(colon - image));
		*tag = xstrdup(colon + 1);
	} else {
		*repo = xstrdup(image);
		*tag = xstrdup("latest");
	}
}

char *docker_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xcalloc(3 * strlen(s) + 1, 1), *o = out;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-_.~", c))
			*o++ = (char)c;
		else
			*o++ = '%', *o++ = hex[c >> 4], *o++ = hex[c & 15];
	}
	return out;
}
