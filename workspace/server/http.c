/* http.c: libmicrohttpd glue: routing, authentication, body limits.
 *
 * The first call of a request routes it and checks its credential and
 * declared size; an error found then is kept and sent after the body was
 * read and discarded (so a client that writes its whole body first still
 * sees the 4xx), unless the body is larger than WS_DISCARD_CAP, in which
 * case the reply goes out at once and the connection is closed. */
#include "workspace/server/http.h"
#include "workspace/server/web.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct route *const tables[] = {
    routes_jobs,       routes_logs,    routes_agent, routes_lease,
    routes_attempt,    routes_admin,   routes_files, routes_web,
    routes_checkpoint, routes_metrics, NULL};

static bool match_route(struct req *r, const struct route *rt,
                        const char *method)
{
	char pat[128], *save = NULL, *p;
	int i = 0;

	if (strcmp(rt->method, method) != 0)
		return false;
	snprintf(pat, sizeof(pat), "%s", rt->pattern);
	for (p = strtok_r(pat, "/", &save); p != NULL;
	     p = strtok_r(NULL, "/", &save), i++) {
		if (strcmp(p, "**") == 0)
			return i < r->nseg;
		if (i >= r->nseg)
			return false;
		if (strcmp(p, "*") != 0 && strcmp(p, r->segs[i]) != 0)
			return false;
	}
	return i == r->nseg;
}

/* Split r->path into segments; the rest after segment k is kept whole. */
static int split_path(struct req *r, const char *url)
{
	char *p;

	r->path = xstrdup(url + strlen("/api/v1/"));
	r->rest = xstrdup(r->path);
	r->nseg = 0;
	for (p = r->path; *p != '\0' && r->nseg < REQ_MAX_SEGS;) {
		r->segs[r->nseg++] = p;
		p = strchr(p, '/');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return 0;
}

/* For "**" routes: the path after the fixed segments. */
static void set_rest(struct req *r)
{
	const char *pat = r->route->pattern, *u = r->rest;
	int fixed = 0;
	char *copy;

	for (const char *c = pat; *c; c++)
		if (*c == '/')
			fixed++;
	for (int i = 0; i < fixed && u != NULL; i++) {
		u = strchr(u, '/');
		if (u != NULL)
			u++;
	}
	copy = xstrdup(u ? u : "");
	free(r->rest);
	r->rest = copy;
}

static void early_error(struct req *r, int status, const char *code,
                        const char *msg)
{
	json_t *b =
	    json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	r->early_status = status;
	r->early_body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
}

static int open_tmp(struct req *r);

/* Take the JSON body of the reply a pre-check made. */
static char *pre_body(struct req *r)
{
	char *b = r->pre_text;

	r->pre_text = NULL;
	if (r->resp != NULL)
		MHD_destroy_response(r->resp);
	r->resp = NULL;
	r->status = 0;
	return b ? b : xstrdup("{}");
}

static bool auth_agent(struct req *r, const char *hash)
{
	struct ws *ws = r->ws;
	sqlite3_stmt *st;
	bool ok = false;

	store_lock(ws);
	st = store_prep(ws, "SELECT id, secret_hash = ?1 FROM agents WHERE "
	                    "(secret_hash = ?1 OR new_secret_hash = ?1) AND "
	                    "state != 'revoked'");
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(r->agent_id, sizeof(r->agent_id), "%s",
		         (const char *)sqlite3_column_text(st, 0));
		ok = true;
		if (sqlite3_column_int(st, 1) == 0) {
			/* first call with a rotated secret: the old one dies */
			sqlite3_stmt *u = store_prep(
			    ws, "UPDATE agents SET secret_hash = "
			        "new_secret_hash, new_secret_hash = NULL "
			        "WHERE id = ?");
			sqlite3_bind_text(u, 1, r->agent_id, -1, SQLITE_STATIC);
			sqlite3_step(u);
			store_done(u);
		}
	}
	store_done(st);
	store_unlock(ws);
	return ok;
}

/* Check the bearer credential against the route; false: early error set. */
static bool check_auth(struct req *r)
{
	const char *h = req_header(r, "Authorization");
	char hash[65];

	if (r->route->auth == AUTH_NONE)
		return true;
	if (h == NULL && web_session_check(r)) /* web page cookie */
		return true;
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0) {
		early_error(r, 401, "unauthorized",
		            "missing 'Authorization: Bearer <token>'");
		return false;
	}
	auth_hash(h + 7, hash);
	if (r->route->auth != AUTH_AGENT &&
	    strcmp(hash, r->ws->admin_hash) == 0)
		r->is_admin = true;
	else if (r->route->auth != AUTH_ADMIN && auth_agent(r, hash))
		return true;
	else if (web_viewer_check(r, hash)) /* read-only viewer token */
		return true;
	if (!r->is_admin) {
		early_error(r, 401, "unauthorized",
		            "the token is not valid for this call (unknown, "
		            "revoked or the wrong kind)");
		return false;
	}
	return true;
}

/* Run the route's pre-check; a reply it made is sent after the body. */
static void run_pre(struct req *r)
{
	int st;

	r->in_pre = true;
	st = r->route->pre(r);
	r->in_pre = false;
	if (st != 0) {
		r->early_status = r->status;
		r->early_body = pre_body(r);
	}
}

static void route_request(struct req *r, const char *url, const char *method)
{
	const char *proto = req_header(r, "Tether-Protocol");
	const char *cl = req_header(r, "Content-Length");
	int64_t len = -1;
	bool path_seen = false;

	if (strncmp(url, "/api/v1/", 8) != 0 && web_route(r, url, method))
		goto routed; /* the web page (web.c) */
	if (strncmp(url, "/api/v1/", 8) != 0) {
		early_error(r, 404, "not_found",
		            "no such path (the API is "
		            "under /api/v1/)");
		return;
	}
	split_path(r, url);
	for (int t = 0; tables[t] != NULL && r->route == NULL; t++)
		for (const struct route *rt = tables[t]; rt->method; rt++) {
			if (match_route(r, rt, method)) {
				r->route = rt;
				break;
			}
			if (match_route(r, rt, rt->method))
				path_seen = true;
		}
	if (r->route == NULL) {
		early_error(r, path_seen ? 405 : 404,
		            path_seen ? "invalid" : "not_found",
		            path_seen ? "method not allowed on this path"
		                      : "no such path");
		return;
	}
routed:
	if (strstr(r->route->pattern, "**"))
		set_rest(r);
	if (proto != NULL && strcmp(proto, "1") != 0) {
		early_error(r, 426, "upgrade_required",
		            "this workspace speaks Tether protocol 1 only");
		return;
	}
	if (!check_auth(r))
		return;
	r->cap = r->route->body == BODY_NONE
	             ? 0
	             : *(const int64_t *)((const char *)&r->ws->conf +
	                                  r->route->cap_offset);
	if (cl != NULL && parse_i64(cl, 0, INT64_MAX, &len, NULL) == 0 &&
	    len > r->cap && r->route->body != BODY_NONE)
		early_error(r, 413, "too_large", "request body over the limit");
	else if (cl != NULL && len > 0 && r->route->body == BODY_NONE)
		early_error(r, 413, "too_large",
		            "this call takes no request body");
	else if (r->route->pre != NULL)
		run_pre(r);
}

int req_body_file(struct req *r, char hex[65])
{
	if (r->fd < 0 && open_tmp(r) < 0)
		return -1;
	if (fsync(r->fd) < 0)
		return -1;
	sha256_final(r->sha, hex);
	r->sha = NULL;
	return 0;
}

static int open_tmp(struct req *r)
{
	struct err e;

	r->tmp_path = xasprintf("%s/tmp/up.XXXXXX", r->ws->dir);
	r->fd = mkostemp(r->tmp_path, O_CLOEXEC);
	if (r->fd < 0) {
		err_sys(&e, TERR_IO, "create %s", r->tmp_path);
		log_error("%s", e.msg);
		return -1;
	}
	r->sha = sha256_new();
	return 0;
}

/* Take one piece of the body. */
static int take_body(struct req *r, const char *data, size_t n)
{
	r->size += (int64_t)n;
	if (r->early_status || r->too_large)
		return r->size > WS_DISCARD_CAP ? -1 : 0;
	if (r->size > r->cap) {
		r->too_large = true;
		early_error(r, 413, "too_large", "request body over the limit");
		return 0;
	}
	if (r->route->body == BODY_MEM)
		return buf_append(&r->body, data, n, NULL) < 0 ? -1 : 0;
	if (r->route->body == BODY_SINK)
		return r->route->sink(r, data, n);
	if (r->fd < 0 && open_tmp(r) < 0)
		return -1;
	sha256_update(r->sha, data, n);
	return fd_write_all(r->fd, data, n, NULL) < 0 ? -1 : 0;
}

static enum MHD_Result send_reply(struct req *r)
{
	enum MHD_Result ret;

	if (r->resp == NULL)
		reply_internal(r, "handler sent no reply");
	ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	return ret;
}

static enum MHD_Result send_early(struct req *r)
{
	char *b = r->early_body;

	r->early_body = NULL;
	reply_bytes(r, r->early_status, b, strlen(b), "application/json");
	free(b);
	return send_reply(r);
}

enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *data,
                                size_t *data_size, void **con_cls)
{
	struct req *r = *con_cls;

	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->ws = cls;
		r->conn = conn;
		r->fd = -1;
		*con_cls = r;
		buf_init(&r->body, 0);
		route_request(r, url, method);
		if (r->route && r->route->body != BODY_SINK)
			buf_init(&r->body, (size_t)r->cap);
		if (r->early_status) {
			const char *cl = req_header(r, "Content-Length");
			int64_t len = 0;
			if (cl == NULL ||
			    (parse_i64(cl, 0, INT64_MAX, &len, NULL) == 0 &&
			     len > WS_DISCARD_CAP))
				return send_early(r);
		}
		return MHD_YES;
	}
	if (*data_size > 0) {
		int rc = take_body(r, data, *data_size);
		*data_size = 0;
		return rc < 0 ? MHD_NO : MHD_YES;
	}
	if (r->early_status)
		return send_early(r);
	if (r->status == 0 && r->resp == NULL) {
		int st = r->route->fn(r);
		if (st == REQ_SUSPENDED && r->resp == NULL)
			return MHD_YES;
	}
	return send_reply(r);
}

void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode t)
{
	struct req *r = *con_cls;

	if (r == NULL)
		return;
	if (r->state_free != NULL)
		r->state_free(r);
	if (r->fd >= 0)
		close(r->fd);
	if (r->tmp_path != NULL)
		unlink(r->tmp_path);
	if (r->sha != NULL) {
		char junk[SHA256_HEX_LEN + 1];
		sha256_final(r->sha, junk);
	}
	if (r->resp != NULL)
		MHD_destroy_response(r->resp);
	free(r->tmp_path);
	free(r->early_body);
	free(r->pre_text);
	sched_fit_free(r->fit);
	free(r->path);
	free(r->rest);
	buf_free(&r->body);
	free(r);
	*con_cls = NULL;
}
