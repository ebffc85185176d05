/* reply.c: building replies (JSON, error bodies, bytes, files) and reading
 * request arguments, for the API handlers. */
#include "workspace/server/http.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int reply_bytes(struct req *r, int status, const void *data, size_t len,
                const char *ctype)
{
	if (r->resp != NULL)
		MHD_destroy_response(r->resp);
	r->resp = MHD_create_response_from_buffer(len, (void *)data,
	                                          MHD_RESPMEM_MUST_COPY);
	if (r->in_pre) {
		free(r->pre_text);
		r->pre_text = malloc(len + 1);
		if (r->pre_text != NULL) {
			memcpy(r->pre_text, data, len);
			r->pre_text[len] = '\0';
		}
	}
	if (ctype != NULL)
		MHD_add_response_header(r->resp, "Content-Type", ctype);
	r->status = status;
	return status;
}

int reply_json(struct req *r, int status, json_t *body)
{
	static const char oops[] = "{\"error\":{\"code\":\"internal\","
	                           "\"message\":\"reply not encodable\"}}";
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text == NULL) /* a NULL body: json_pack met bytes not UTF-8 */
		return reply_bytes(r, 500, oops, strlen(oops),
		                   "application/json");
	reply_bytes(r, status, text, strlen(text), "application/json");
	free(text);
	return status;
}

int reply_fd(struct req *r, int status, int fd, int64_t size)
{
	return reply_fd_at(r, status, fd, 0, size);
}

int reply_fd_at(struct req *r, int status, int fd, int64_t off, int64_t size)
{
	if (r->resp != NULL)
		MHD_destroy_response(r->resp);
	r->resp = MHD_create_response_from_fd_at_offset64((uint64_t)size, fd,
	                                                  (uint64_t)off);
	MHD_add_response_header(r->resp, "Content-Type",
	                        "application/octet-stream");
	r->status = status;
	return status;
}

void reply_header(struct req *r, const char *name, const char *value)
{
	if (r->resp != NULL)
		MHD_add_response_header(r->resp, name, value);
}

int reply_error(struct req *r, int status, const char *code, const char *field,
                const char *fmt, ...)
{
	char raw[1024], msg[1024];
	va_list ap;
	json_t *err;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	str_escape_ctl(raw, msg, sizeof(msg)); /* request text: one line */
	err = json_pack("{s:s,s:s}", "code", code, "message", msg);
	if (err == NULL) { /* msg quotes request text that is not UTF-8 */
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		err = json_pack("{s:s,s:s}", "code", code, "message", msg);
	}
	if (field != NULL)
		json_object_set_new(err, "field", json_string(field));
	return reply_json(r, status, json_pack("{s:o}", "error", err));
}

int reply_internal(struct req *r, const char *what)
{
	log_error("internal error: %s", what);
	return reply_error(r, 500, "internal", NULL, "internal error: %s",
	                   what);
}

/* "resources.cpus: expected a number" -> "resources.cpus". */
static void field_of(const char *msg, char *out, size_t size)
{
	const char *c = strstr(msg, ": ");
	size_t n;

	out[0] = '\0';
	if (c == NULL)
		return;
	n = (size_t)(c - msg);
	if (n == 0 || n >= size || memchr(msg, ' ', n) != NULL)
		return;
	memcpy(out, msg, n);
	out[n] = '\0';
}

int reply_err(struct req *r, const struct err *e)
{
	char field[256];
	int status = 400;
	const char *code = "invalid";

	switch (e->code) {
	case TERR_NOTFOUND:
		status = 404, code = "not_found";
		break;
	case TERR_CONFLICT:
	case TERR_EXISTS:
		status = 409, code = "conflict";
		break;
	case TERR_TOOBIG:
		status = 413, code = "too_large";
		break;
	case TERR_AUTH:
		status = 401, code = "unauthorized";
		break;
	case TERR_IO:
	case TERR_NOMEM:
	case TERR_FAIL:
		return reply_internal(r, e->msg);
	default:
		break;
	}
	if (e->field[0] != '\0')
		snprintf(field, sizeof(field), "%s", e->field);
	else
		field_of(e->msg, field, sizeof(field));
	return reply_error(r, status, code, field[0] ? field : NULL, "%s",
	                   e->msg);
}

int req_json(struct req *r, json_t **out)
{
	struct err e = {0};

	if (r->body.len == 0)
		return reply_error(r, 400, "invalid", NULL,
		                   "expected a JSON body"),
		       -1;
	if (json_parse(r->body.data, r->body.len, WS_MAX_DEPTH, out, &e) < 0) {
		reply_err(r, &e);
		return -1;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		reply_error(r, 400, "invalid", NULL, "expected a JSON object");
		return -1;
	}
	return 0;
}

const char *req_arg(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
	                                   name);
}

const char *req_header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int req_arg_i64(struct req *r, const char *name, int64_t min, int64_t max,
                int64_t def, int64_t *out)
{
	const char *v = req_arg(r, name);
	struct err e = {0};

	char shown[64];

	*out = def;
	if (v == NULL || *v == '\0')
		return 0;
	/* digits only: strtoll would take "+10" and " 10" as 10 */
	if (strspn(v, "0123456789") != strlen(v)) {
		reply_error(r, 400, "invalid", name,
		            "%s: '%s' is not a whole number (digits only)",
		            name, str_escape(v, shown, sizeof(shown)));
		return -1;
	}
	if (parse_i64(v, min, max, out, &e) < 0) {
		reply_error(r, 400, "invalid", name, "%s: %s", name, e.msg);
		return -1;
	}
	return 0;
}

int req_seg_id(struct req *r, int i, int64_t *out)
{
	char shown[80];

	if (strspn(r->segs[i], "0123456789") != strlen(r->segs[i]) ||
	    parse_i64(r->segs[i], 1, INT64_MAX, out, NULL) < 0) {
		reply_error(r, 404, "not_found", NULL, "no such id '%s'",
		            str_escape(r->segs[i], shown, sizeof(shown)));
		return -1;
	}
	return 0;
}

int req_arg_name(struct req *r, const char *name, const char **out)
{
	const char *v = req_arg(r, name);
	char shown[80];

	*out = v != NULL && *v != '\0' ? v : NULL;
	if (*out == NULL)
		return 0;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f ||
		    p - v >= WS_MAX_NAME) {
			reply_error(r, 400, "invalid", name,
			            "%s: '%s' is not a name (1 to %d bytes, no "
			            "control characters)",
			            name, str_escape(v, shown, sizeof(shown)),
			            WS_MAX_NAME);
			return -1;
		}
	return 0;
}
