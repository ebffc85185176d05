#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Fill e: code, field ("" for none) and the formatted message. */
static int err_vset(struct err *e, int code, const char *field, const char *fmt,
                    va_list ap)
{
	if (e == NULL)
		return code;
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return code;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, "", fmt, ap);
	va_end(ap);
	return code;
}

int err_set_field(struct err *e, int code, const char *field, const char *fmt,
                  ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, field, fmt, ap);
	va_end(ap);
	return code;
}

int err_sys(struct err *e, int code, const char *fmt, ...)
{
	int saved = errno;
	size_t n;
	va_list ap;

	if (e == NULL)
		return code;
	va_start(ap, fmt);
	err_vset(e, code, "", fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(saved));
	errno = saved;
	return code;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	char old[ERR_MSG_MAX];
	va_list ap;
	int n;

	if (e == NULL)
		return TERR_FAIL;
	memcpy(old, e->msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - (size_t)n, ": %.*s",
		         (int)(sizeof(e->msg) - (size_t)n), old);
	if (e->code == 0)
		e->code = TERR_FAIL;
	return e->code;
}

void err_clear(struct err *e)
{
	if (e == NULL)
		return;
	e->code = 0;
	e->msg[0] = '\0';
	e->field[0] = '\0';
}

const char *err_name(int code)
{
	switch (code) {
	case TERR_OK:
		return "ok";
	case TERR_NOMEM:
		return "nomem";
	case TERR_IO:
		return "io";
	case TERR_INVAL:
		return "invalid";
	case TERR_NOTFOUND:
		return "not_found";
	case TERR_EXISTS:
		return "exists";
	case TERR_TOOBIG:
		return "too_big";
	case TERR_NET:
		return "network";
	case TERR_AUTH:
		return "auth";
	case TERR_CONFLICT:
		return "conflict";
	case TERR_PROTO:
		return "protocol";
	case TERR_BUSY:
		return "busy";
	case TERR_PERM:
		return "permission";
	case TERR_UNSUPP:
		return "unsupported";
	case TERR_GAP:
		return "gap";
	case TERR_TIMEOUT:
		return "timeout";
	default:
		return "failed";
	}
}
