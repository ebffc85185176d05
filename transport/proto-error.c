/* proto-error.c: the workspace protocol's HTTP statuses and error bodies
 * as TERR_* codes and messages (docs/protocol.md, Conventions: Errors). */
#include "transport/proto-error.h"

#include "common/err.h"

int proto_error_code(long status)
{
	switch (status) {
	case 400:
		return TERR_INVAL;
	case 401:
	case 403:
		return TERR_AUTH;
	case 404:
		return TERR_NOTFOUND;
	case 409:
		return TERR_CONFLICT;
	case 413:
		return TERR_TOOBIG;
	case 416:
		return TERR_GAP;
	case 426:
		return TERR_PROTO;
	case 429:
	case 503:
		return TERR_BUSY;
	default:
		return status >= 200 && status < 300 ? 0 : TERR_FAIL;
	}
}

const char *proto_error_message(const json_t *body)
{
	json_t *error = json_object_get(body, "error");

	return json_string_value(json_object_get(error, "message"));
}

int proto_error_set(long status, const json_t *body, struct err *e)
{
	int code = proto_error_code(status);
	const char *msg = proto_error_message(body);

	if (code == 0)
		return 0;
	return err_set(e, code, "HTTP %ld: %s", status,
	               msg ? msg : err_name(code));
}
