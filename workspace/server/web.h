/* web.h: the web page served by tether-workspace (docs/web.md): static
 * files compiled in, a login that sets an HttpOnly session cookie, and
 * read-only viewer tokens.
 *
 * http.c calls web_route() for paths outside /api/v1/, web_session_check()
 * when a request has no Authorization header, and web_viewer_check() when
 * a bearer token is neither the admin token nor an agent secret. */
#ifndef TETHER_WS_WEB_H
#define TETHER_WS_WEB_H

#include "workspace/server/http.h"

#include <stdbool.h>
#include <stddef.h>

#define WEB_COOKIE       "tether_session"
#define WEB_CSRF_HEADER  "Tether-CSRF"
#define WEB_SESSION_TTL  (12 * 3600.0) /* seconds */
#define WEB_MAX_SESSIONS 512

enum web_role { WEB_NONE = 0, WEB_VIEWER, WEB_ADMIN };

/* One compiled-in file (web-assets.c, generated from workspace/web/). */
struct web_asset {
	const char *name; /* "app.js" */
	const unsigned char *data;
	size_t len;
};
extern const struct web_asset web_assets[]; /* ends with a NULL name */

/* web.c: route a request outside /api/v1/ (the page, its files, the
 * login); false: no such page. */
bool web_route(struct req *r, const char *url, const char *method);

/* web-auth.c */
/* A session cookie on r that is good for r's route (admin or viewer;
 * non-GET calls need the Tether-CSRF header). */
bool web_session_check(struct req *r);
/* hash is a live viewer token and r's route is a read-only call. */
bool web_viewer_check(struct req *r, const char *hash);
/* The role of the session cookie on r (WEB_NONE without one). */
enum web_role web_session_role(struct req *r);
/* The role a token gives (admin token or live viewer token). */
enum web_role web_token_role(struct ws *ws, const char *token);
/* Start a session for role; writes the cookie value (sid). */
void web_session_new(enum web_role role, const char *token, char *sid,
                     size_t size);
/* End the session named by r's cookie, if any. */
void web_session_end(struct req *r);

/* web-tokens.c: viewer tokens (table viewer_tokens) */
void web_tokens_ensure(struct ws *ws); /* with store_lock held */
bool web_tokens_live(struct ws *ws, const char *hash);

extern const struct route routes_web[];

#endif
