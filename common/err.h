/* err.h: the one error convention of Tether.
 *
 * Functions that can fail return int: 0 on success, a negative TERR_* code
 * on failure, with the message in a caller-provided struct err.  Lower
 * errors are wrapped with context ("lease job 42: connect: timed out"),
 * never replaced.  The codes are never renumbered. */
#ifndef TETHER_ERR_H
#define TETHER_ERR_H

#include <stddef.h>

enum terr {
	TERR_OK = 0,
	TERR_FAIL = -1,      /* generic failure */
	TERR_NOMEM = -2,     /* allocation failed */
	TERR_IO = -3,        /* file or pipe I/O; errno text in message */
	TERR_INVAL = -4,     /* bad input: config, job spec, arguments */
	TERR_NOTFOUND = -5,  /* no such job, file, key */
	TERR_EXISTS = -6,    /* already exists / already attached */
	TERR_TOOBIG = -7,    /* over a configured cap */
	TERR_NET = -8,       /* connection, TLS, DNS, timeout */
	TERR_AUTH = -9,      /* 401/403, host key, bad credential */
	TERR_CONFLICT = -10, /* 409: superseded attempt, lock held */
	TERR_PROTO = -11,    /* peer broke the protocol */
	TERR_BUSY = -12,     /* try again later (lock, 429, 503) */
	TERR_PERM = -13,     /* permission denied, not root */
	TERR_UNSUPP = -14,   /* not supported on this node */
	TERR_GAP = -15,      /* log offset gap (HTTP 416) */
	TERR_TIMEOUT = -16,  /* deadline passed */
};

#define ERR_MSG_MAX   1024
#define ERR_FIELD_MAX 256

struct err {
	int code;
	char msg[ERR_MSG_MAX];
	/* the request field at fault, when the message's "field: " prefix
	 * cannot say it (a key with spaces or control characters); "" */
	char field[ERR_FIELD_MAX];
};

/* Set *e (if non-NULL) to code and a formatted message; returns code. */
int err_set(struct err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* err_set naming the request field at fault (kept by err_wrap). */
int err_set_field(struct err *e, int code, const char *field, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));
/* Like err_set, with ": strerror(errno)" appended; returns code. */
int err_sys(struct err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the message in *e with context ("ctx: old message"); returns e->code.
 */
int err_wrap(struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void err_clear(struct err *e);
/* Short name of a code, e.g. "invalid" for TERR_INVAL. */
const char *err_name(int code);

#endif
