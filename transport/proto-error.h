/* proto-error.h: how the workspace protocol's replies map to errors: an
 * HTTP status to a TERR_* code, and the body's {"error": {"message"}} to
 * its text.  One table for every client of the protocol: the agent's
 * transport (transport-https.c, non-blocking) and the CLI (cli/api.c).
 * Pure functions: no I/O. */
#ifndef TETHER_PROTO_ERROR_H
#define TETHER_PROTO_ERROR_H

#include <jansson.h>

struct err;

/* The TERR_* code of an HTTP status: 0 for 2xx, TERR_FAIL for a status
 * the protocol gives no meaning. */
int proto_error_code(long status);
/* The protocol error's message in a reply body, or NULL. */
const char *proto_error_message(const json_t *body);
/* Both into e as "HTTP <status>: <message, or the code's name>"; returns
 * the code (0, and e untouched, for 2xx). */
int proto_error_set(long status, const json_t *body, struct err *e);

#endif
