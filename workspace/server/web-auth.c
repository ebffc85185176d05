/* web-auth.c: who may read what through the web page.
 *
 * A login (POST /web/login) trades the admin token or a viewer token for
 * a session: a random id sent back as an HttpOnly, SameSite=Strict cookie
 * and kept here, in memory, as its sha256 with the role, the token's hash
 * (checked again on every use, so revoking the viewer token ends its
 * sessions) and an expiry.  A cookie authenticates API calls like a bearer
 * token, except that agent calls never take one and a state-changing call
 * (anything but GET) needs the Tether-CSRF header, which a cross-site form
 * or image cannot send.  Viewers may make GET calls only, never the token
 * listings. */
#include "workspace/server/web.h"
#include "common/util.h"

#include <pthread.h>
#include <string.h>

struct session {
	char sid_hash[65]; /* "" for a free slot */
	char token_hash[65];
	enum web_role role;
	double expires;
};

static struct session sessions[WEB_MAX_SESSIONS];
static pthread_mutex_t sessions_mu = PTHREAD_MUTEX_INITIALIZER;

/* The value of cookie `name` in a Cookie header, copied into out. */
static bool cookie_value(const char *hdr, const char *name, char *out,
                         size_t size)
{
	size_t n = strlen(name);

	for (const char *p = hdr; p != NULL && *p != '\0';) {
		while (*p == ' ' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			if (len - n - 1 >= size)
				return false;
			memcpy(out, p + n + 1, len - n - 1);
			out[len - n - 1] = '\0';
			return out[0] != '\0';
		}
		p = end;
	}
	return false;
}

/* A token role that still holds: admin hash, or a live viewer token. */
static enum web_role hash_role(struct ws *ws, const char *hash, bool viewer)
{
	if (!viewer && strcmp(hash, ws->admin_hash) == 0)
		return WEB_ADMIN;
	if (web_tokens_live(ws, hash))
		return WEB_VIEWER;
	return WEB_NONE;
}

enum web_role web_token_role(struct ws *ws, const char *token)
{
	char hash[65];

	auth_hash(token, hash);
	return hash_role(ws, hash, false);
}

/* Find the session of r's cookie; its role, or WEB_NONE. */
static enum web_role find_session(struct req *r, char token_hash[65])
{
	const char *hdr = req_header(r, "Cookie");
	char sid[96], hash[65];
	enum web_role role = WEB_NONE;
	double now = ws_now();

	if (hdr == NULL || !cookie_value(hdr, WEB_COOKIE, sid, sizeof(sid)))
		return WEB_NONE;
	auth_hash(sid, hash);
	explicit_bzero(sid, sizeof(sid));
	pthread_mutex_lock(&sessions_mu);
	for (int i = 0; i < WEB_MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->sid_hash[0] == '\0' || strcmp(s->sid_hash, hash) != 0)
			continue;
		if (s->expires > now) {
			role = s->role;
			memcpy(token_hash, s->token_hash, 65);
		} else {
			memset(s, 0, sizeof(*s));
		}
		break;
	}
	pthread_mutex_unlock(&sessions_mu);
	return role;
}

enum web_role web_session_role(struct req *r)
{
	char th[65];
	enum web_role role = find_session(r, th);

	if (role == WEB_NONE)
		return WEB_NONE;
	/* the token behind it may have been revoked since the login */
	return hash_role(r->ws, th, role == WEB_VIEWER) == role ? role
	                                                        : WEB_NONE;
}

/* Calls a viewer may make: GET, admin-level, not a token listing. */
static bool viewer_route(const struct route *rt)
{
	return rt->auth == AUTH_ADMIN && strcmp(rt->method, "GET") == 0 &&
	       strncmp(rt->pattern, "tokens", 6) != 0 &&
	       strncmp(rt->pattern, "viewer-tokens", 13) != 0;
}

bool web_viewer_check(struct req *r, const char *hash)
{
	return viewer_route(r->route) && web_tokens_live(r->ws, hash);
}

bool web_session_check(struct req *r)
{
	const struct route *rt = r->route;
	const char *csrf = req_header(r, WEB_CSRF_HEADER);
	enum web_role role;

	if (rt->auth == AUTH_AGENT || rt->auth == AUTH_NONE)
		return false;
	if (strcmp(rt->method, "GET") != 0 &&
	    (csrf == NULL || strcmp(csrf, "1") != 0))
		return false;
	role = web_session_role(r);
	if (role == WEB_ADMIN) {
		r->is_admin = true;
		return true;
	}
	return role == WEB_VIEWER && viewer_route(rt);
}

void web_session_new(enum web_role role, const char *token, char *sid,
                     size_t size)
{
	struct session *slot = &sessions[0];
	double now = ws_now();

	auth_new_token("ts_", sid, size);
	pthread_mutex_lock(&sessions_mu);
	/* a free or expired slot, else the one closest to expiry */
	for (int i = 0; i < WEB_MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->sid_hash[0] == '\0' || s->expires <= now) {
			slot = s;
			break;
		}
		if (s->expires < slot->expires)
			slot = s;
	}
	auth_hash(sid, slot->sid_hash);
	auth_hash(token, slot->token_hash);
	slot->role = role;
	slot->expires = now + WEB_SESSION_TTL;
	pthread_mutex_unlock(&sessions_mu);
}

void web_session_end(struct req *r)
{
	const char *hdr = req_header(r, "Cookie");
	char sid[96], hash[65];

	if (hdr == NULL || !cookie_value(hdr, WEB_COOKIE, sid, sizeof(sid)))
		return;
	auth_hash(sid, hash);
	explicit_bzero(sid, sizeof(sid));
	pthread_mutex_lock(&sessions_mu);
	for (int i = 0; i < WEB_MAX_SESSIONS; i++)
		if (strcmp(sessions[i].sid_hash, hash) == 0)
			memset(&sessions[i], 0, sizeof(sessions[i]));
	pthread_mutex_unlock(&sessions_mu);
}
