/* web.c: the web page's own paths (docs/web.md): the page itself, its
 * compiled-in files under /static/, and the login.
 *
 *   GET  /, /agents, /jobs, /jobs/N, /login  the app, or the login page
 *                                            without a valid session
 *   GET  /static/NAME                        app.js, app.css, ...
 *   POST /web/login   {"token": "..."}       sets the session cookie
 *   POST /web/logout                         ends it
 *   GET  /web/session                        {"role": "admin"|"viewer"}
 *
 * The page holds no data: everything it shows comes from /api/v1/ calls
 * that the session cookie authenticates (web-auth.c). */
#include "workspace/server/web.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

/* No inline script or style and nothing from elsewhere: even markup that
 * slipped into the page could not run. */
#define WEB_CSP                                                                \
	"default-src 'none'; script-src 'self'; style-src 'self'; "            \
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; "          \
	"form-action 'self'; frame-ancestors 'none'"

static const struct web_asset *asset_find(const char *name)
{
	for (const struct web_asset *a = web_assets; a->name != NULL; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static const char *asset_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (dot == NULL)
		return "application/octet-stream";
	if (strcmp(dot, ".html") == 0)
		return "text/html; charset=utf-8";
	if (strcmp(dot, ".js") == 0)
		return "text/javascript; charset=utf-8";
	if (strcmp(dot, ".css") == 0)
		return "text/css; charset=utf-8";
	if (strcmp(dot, ".svg") == 0)
		return "image/svg+xml";
	return "application/octet-stream";
}

static void security_headers(struct req *r, const char *cache)
{
	reply_header(r, "Content-Security-Policy", WEB_CSP);
	reply_header(r, "X-Content-Type-Options", "nosniff");
	reply_header(r, "X-Frame-Options", "DENY");
	reply_header(r, "Referrer-Policy", "no-referrer");
	reply_header(r, "Cache-Control", cache);
}

static int send_asset(struct req *r, const char *name, const char *cache)
{
	const struct web_asset *a = asset_find(name);

	if (a == NULL)
		return reply_error(r, 404, "not_found", NULL, "no such path");
	reply_bytes(r, 200, a->data, a->len, asset_type(name));
	security_headers(r, cache);
	return 200;
}

/* The app with a valid session, else the login page (never data). */
static int page_get(struct req *r)
{
	bool in = web_session_role(r) != WEB_NONE;
	return send_asset(r, in ? "app.html" : "login.html", "no-store");
}

static int static_get(struct req *r)
{
	return send_asset(r, r->path + strlen("/static/"), "no-cache");
}

/* The request came in over TLS (the cookie is then marked Secure). */
static bool over_tls(struct req *r)
{
	return MHD_get_connection_info(
	           r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION) != NULL;
}

static void set_cookie(struct req *r, const char *sid, double max_age)
{
	char *c =
	    xasprintf("%s=%s; Path=/; HttpOnly; SameSite=Strict; "
	              "Max-Age=%.0f%s",
	              WEB_COOKIE, sid, max_age, over_tls(r) ? "; Secure" : "");

	reply_header(r, "Set-Cookie", c);
	reply_header(r, "Cache-Control", "no-store");
	freezero_str(c);
}

/* A login or logout must carry the CSRF header (no cross-site forms). */
static bool csrf_ok(struct req *r)
{
	const char *h = req_header(r, WEB_CSRF_HEADER);

	if (h != NULL && strcmp(h, "1") == 0)
		return true;
	reply_error(r, 403, "forbidden", NULL,
	            "missing header '" WEB_CSRF_HEADER ": 1'");
	return false;
}

static const char *role_name(enum web_role role)
{
	return role == WEB_ADMIN ? "admin" : "viewer";
}

static int login_post(struct req *r)
{
	json_t *b = NULL;
	struct err e = {0};
	const char *tok = NULL;
	enum web_role role;
	char sid[80];
	int st;

	if (!csrf_ok(r) || req_json(r, &b) < 0)
		return r->status;
	if (json_check_keys(b, "", (const char *const[]){"token", NULL}, &e) <
	        0 ||
	    json_get_str(b, "", "token", true, 256, &tok, &e) < 0) {
		st = reply_err(r, &e);
		goto out;
	}
	role = web_token_role(r->ws, tok);
	if (role == WEB_NONE) {
		st = reply_error(r, 401, "unauthorized", NULL,
		                 "not the admin token or a live viewer token");
		log_info("web login refused");
		goto out;
	}
	web_session_new(role, tok, sid, sizeof(sid));
	st = reply_json(r, 200, json_pack("{s:s}", "role", role_name(role)));
	set_cookie(r, sid, WEB_SESSION_TTL);
	explicit_bzero(sid, sizeof(sid));
	log_info("web login as %s", role_name(role));
out:
	json_decref(b);
	return st;
}

static int logout_post(struct req *r)
{
	if (!csrf_ok(r))
		return r->status;
	web_session_end(r);
	reply_json(r, 200, json_pack("{s:b}", "logged_out", 1));
	set_cookie(r, "", 0);
	return 200;
}

static int session_get(struct req *r)
{
	enum web_role role = web_session_role(r);

	if (role == WEB_NONE)
		return reply_error(r, 401, "unauthorized", NULL,
		                   "not logged in");
	reply_json(r, 200, json_pack("{s:s}", "role", role_name(role)));
	reply_header(r, "Cache-Control", "no-store");
	return 200;
}

static const struct route web_routes[] = {
    {"GET", "page", AUTH_NONE, BODY_NONE, 0, page_get},
    {"GET", "static", AUTH_NONE, BODY_NONE, 0, static_get},
    {"POST", "web/login", AUTH_NONE, BODY_MEM,
     offsetof(struct ws_conf, max_body), login_post},
    {"POST", "web/logout", AUTH_NONE, BODY_MEM,
     offsetof(struct ws_conf, max_body), logout_post},
    {"GET", "web/session", AUTH_NONE, BODY_NONE, 0, session_get},
};

/* "/", "/login", "/agents", "/jobs", "/compare" or "/jobs/<digits>". */
static bool is_page(const char *url)
{
	static const char *const pages[] = {"/",     "/login",   "/agents",
	                                    "/jobs", "/compare", NULL};
	int64_t id;

	for (int i = 0; pages[i]; i++)
		if (strcmp(url, pages[i]) == 0)
			return true;
	return strncmp(url, "/jobs/", 6) == 0 &&
	       parse_i64(url + 6, 1, INT64_MAX, &id, NULL) == 0;
}

static const struct route *pick(const char *url)
{
	if (is_page(url))
		return &web_routes[0];
	if (strncmp(url, "/static/", 8) == 0 && strchr(url + 8, '/') == NULL)
		return &web_routes[1];
	for (size_t i = 2; i < sizeof(web_routes) / sizeof(web_routes[0]); i++)
		if (strcmp(url + 1, web_routes[i].pattern) == 0)
			return &web_routes[i];
	return NULL;
}

bool web_route(struct req *r, const char *url, const char *method)
{
	const struct route *rt = pick(url);

	if (rt == NULL || strcmp(rt->method, method) != 0)
		return false;
	r->route = rt;
	r->path = xstrdup(url);
	r->rest = xstrdup("");
	return true;
}
