/* client.c: HTTP to the workspace with libcurl's easy API: TLS with an
 * optional CA file, the admin token as a bearer, bounded reply bodies,
 * and the error bodies of docs/protocol.md turned into messages. */
#include "cli/cli.h"
#include "common/util.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define REPLY_MAX (64 << 20)

/* A followed log's bytes wait at most this long (ms) in the sink before
 * they are written out: a write and a reader's wake-up per TLS record
 * (16 KiB) cost the machine more than the reader gains. */
#define STREAM_FLUSH_MS  20
#define STREAM_FLUSH_MAX (1 << 20)

struct sink {
	struct http_reply *r;
	FILE *out; /* download target, used on 2xx only */
	bool failed;
	bool flush;       /* out gets the bytes as they come (http_stream) */
	struct buf pend;  /* flush: bytes not written to out yet */
	int64_t wrote_ms; /* flush: when out was last written */
};

/* Write what the sink holds to out; false if that fails. */
static bool sink_flush(struct sink *s)
{
	if (s->pend.len > 0 &&
	    (fwrite(s->pend.data, 1, s->pend.len, s->out) != s->pend.len ||
	     fflush(s->out) != 0)) {
		s->r->out_error = true;
		return false;
	}
	s->r->streamed += (int64_t)s->pend.len;
	buf_consume(&s->pend, s->pend.len);
	s->wrote_ms = now_mono_ms();
	return true;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;

	if (s->out != NULL && s->flush && s->r->status >= 200 &&
	    s->r->status < 300) {
		if (buf_append(&s->pend, p, len, NULL) < 0 ||
		    ((s->pend.len >= STREAM_FLUSH_MAX ||
		      now_mono_ms() - s->wrote_ms >= STREAM_FLUSH_MS) &&
		     !sink_flush(s)))
			return 0;
		return len;
	}
	if (s->out != NULL && s->r->status >= 200 && s->r->status < 300) {
		if (fwrite(p, 1, len, s->out) != len) {
			s->r->out_error = true;
			return 0;
		}
		s->r->streamed += (int64_t)len;
		return len;
	}
	if (buf_append(&s->r->body, p, len, NULL) < 0) {
		s->failed = true;
		return 0;
	}
	return len;
}

static char *header_value(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	const char *v;
	char *out;

	if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	v = line + n + 1;
	while (v < line + len && (*v == ' ' || *v == '\t'))
		v++;
	len -= (size_t)(v - line);
	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n'))
		len--;
	out = xcalloc(1, len + 1);
	memcpy(out, v, len);
	return out;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	char *v;

	if (strncmp(p, "HTTP/", 5) == 0) {
		long st = 0;
		const char *sp = memchr(p, ' ', len);
		if (sp != NULL)
			st = strtol(sp + 1, NULL, 10);
		s->r->status = st;
	}
	if ((v = header_value(p, len, "Tether-Log-Length")) != NULL) {
		free(s->r->log_length);
		s->r->log_length = v;
	} else if ((v = header_value(p, len, "Tether-Attempt")) != NULL) {
		free(s->r->attempt);
		s->r->attempt = v;
	} else if ((v = header_value(p, len, "Tether-Log-Complete")) != NULL) {
		s->r->complete = strcmp(v, "1") == 0;
		free(v);
	} else if ((v = header_value(p, len, "Tether-Log-Final-Length")) !=
	           NULL) {
		free(s->r->final_length);
		s->r->final_length = v;
	} else if ((v = header_value(p, len, "Tether-Sha256")) != NULL) {
		free(s->r->sha256);
		s->r->sha256 = v;
	}
	return len;
}

/* http:// is allowed only to loopback (design.md: Transports). */
static int check_url(const char *url, struct err *e)
{
	static const char *const ok[] = {"http://127.0.0.1", "http://localhost",
	                                 "http://[::1]", NULL};

	if (strncmp(url, "https://", 8) == 0)
		return 0;
	for (int i = 0; ok[i]; i++) {
		size_t n = strlen(ok[i]);
		if (strncmp(url, ok[i], n) == 0 &&
		    (url[n] == '\0' || url[n] == ':' || url[n] == '/'))
			return 0;
	}
	return err_set(e, TERR_INVAL,
	               "workspace URL '%s': use https:// (plain http:// "
	               "only to loopback)",
	               url);
}

static CURL *setup(struct cmd_ctx *c, const char *method, const char *path,
                   struct curl_slist **hdrs, struct sink *s, long timeout_s)
{
	CURL *h = c->curl;
	char *url = xasprintf("%s%s", c->url, path);
	char *auth = xasprintf("Authorization: Bearer %s", c->token);

	/* the options of the last call go; its live connection, TLS
	 * session and CA cache stay (curl_easy_reset keeps them) */
	if (h == NULL)
		h = c->curl = curl_easy_init();
	else
		curl_easy_reset(h);
	if (h == NULL)
		abort();

	*hdrs = curl_slist_append(*hdrs, auth);
	*hdrs = curl_slist_append(*hdrs, "Tether-Protocol: 1");
	*hdrs = curl_slist_append(*hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->ca != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
	freezero_str(auth);
	free(url);
	return h;
}

static int perform(CURL *h, struct sink *s, struct curl_slist *hdrs,
                   struct err *e)
{
	CURLcode cc = curl_easy_perform(h);
	int r = 0;

	if (cc != CURLE_OK && !(s->failed || s->r->status >= 400))
		r = err_set(e, TERR_NET, "cannot reach the workspace: %s",
		            curl_easy_strerror(cc));
	else if (s->failed)
		r = err_set(e, TERR_TOOBIG,
		            "reply from the workspace too large");
	else
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->r->status);
	curl_slist_free_all(hdrs);
	return r;
}

/* An empty reply for a call to c->url; TERR_INVAL for a bad URL. */
static int reply_begin(struct cmd_ctx *c, struct http_reply *r, struct err *e)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, REPLY_MAX);
	return check_url(c->url, e) < 0 ? TERR_INVAL : 0;
}

int http_call(struct cmd_ctx *c, const char *method, const char *path,
              const void *body, size_t len, const char *ctype, long timeout_s,
              struct http_reply *r, struct err *e)
{
	struct curl_slist *hdrs = NULL;
	struct sink s = {r, NULL, false, false, {0}, 0};
	CURL *h;

	if (reply_begin(c, r, e) < 0)
		return TERR_INVAL;
	if (ctype != NULL) {
		char *ct = xasprintf("Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, ct);
		free(ct);
	}
	h = setup(c, method, path, &hdrs, &s, timeout_s);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)len);
	}
	return perform(h, &s, hdrs, e);
}

int http_upload(struct cmd_ctx *c, const char *path, const char *file,
                struct http_reply *r, struct err *e)
{
	struct curl_slist *hdrs = NULL;
	struct sink s = {r, NULL, false, false, {0}, 0};
	struct stat sb;
	FILE *f;
	CURL *h;
	int rc;

	if (reply_begin(c, r, e) < 0)
		return TERR_INVAL;
	if ((f = fopen(file, "rb")) == NULL || fstat(fileno(f), &sb) < 0) {
		if (f)
			fclose(f);
		return err_sys(e, TERR_IO, "open %s", file);
	}
	hdrs =
	    curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	h = setup(c, "POST", path, &hdrs, &s, 600);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_READDATA, f);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
	                 (curl_off_t)sb.st_size);
	rc = perform(h, &s, hdrs, e);
	fclose(f);
	return rc;
}

int http_download(struct cmd_ctx *c, const char *path, FILE *out,
                  struct http_reply *r, struct err *e)
{
	struct curl_slist *hdrs = NULL;
	struct sink s = {r, out, false, false, {0}, 0};
	CURL *h;

	if (reply_begin(c, r, e) < 0)
		return TERR_INVAL;
	h = setup(c, "GET", path, &hdrs, &s, 3600);
	return perform(h, &s, hdrs, e);
}

int http_stream(struct cmd_ctx *c, const char *path, long timeout_s, FILE *out,
                struct http_reply *r, struct err *e)
{
	struct curl_slist *hdrs = NULL;
	struct sink s = {r, out, false, true, {0}, 0};
	CURL *h;
	int rc;

	if (reply_begin(c, r, e) < 0)
		return TERR_INVAL;
	buf_init(&s.pend, STREAM_FLUSH_MAX + (1 << 20));
	s.wrote_ms = now_mono_ms();
	h = setup(c, "GET", path, &hdrs, &s, timeout_s);
	rc = perform(h, &s, hdrs, e);
	/* what came before the reply ended (or broke off) */
	if (!s.r->out_error)
		sink_flush(&s);
	buf_free(&s.pend);
	return rc;
}

void http_reply_free(struct http_reply *r)
{
	buf_free(&r->body);
	free(r->log_length);
	free(r->final_length);
	free(r->attempt);
	free(r->sha256);
	memset(r, 0, sizeof(*r));
}
