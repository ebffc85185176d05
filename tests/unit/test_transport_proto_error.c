/* Unit tests of the one mapping from a workspace reply (HTTP status and
 * body) to a TERR_* code and message, shared by the agent's transport and
 * the CLI (transport/proto-error.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "transport/proto-error.h"

#include <string.h>

static void statuses(void **state)
{
	static const struct {
		long status;
		int code;
	} t[] = {
	    {200, 0},
	    {201, 0},
	    {204, 0},
	    {400, TERR_INVAL},
	    {401, TERR_AUTH},
	    {403, TERR_AUTH},
	    {404, TERR_NOTFOUND},
	    {409, TERR_CONFLICT},
	    {413, TERR_TOOBIG},
	    {416, TERR_GAP},
	    {426, TERR_PROTO},
	    {429, TERR_BUSY},
	    {503, TERR_BUSY},
	    {405, TERR_FAIL},
	    {500, TERR_FAIL},
	    {302, TERR_FAIL},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (proto_error_code(t[i].status) != t[i].code)
			fail_msg("HTTP %ld: got %d, want %d", t[i].status,
			         proto_error_code(t[i].status), t[i].code);
}

static void messages(void **state)
{
	json_t *b = json_pack("{s:{s:s, s:s}}", "error", "code", "not_found",
	                      "message", "no job 42");
	json_t *odd = json_pack("{s:{s:i}}", "error", "message", 7);
	struct err e = {0};

	assert_string_equal(proto_error_message(b), "no job 42");
	assert_null(proto_error_message(odd));
	assert_null(proto_error_message(NULL));
	assert_int_equal(proto_error_set(404, b, &e), TERR_NOTFOUND);
	assert_string_equal(e.msg, "HTTP 404: no job 42");
	/* Without a message, the code's name. */
	assert_int_equal(proto_error_set(503, NULL, &e), TERR_BUSY);
	assert_string_equal(e.msg, "HTTP 503: busy");
	/* 2xx leaves e alone. */
	memset(&e, 0, sizeof(e));
	assert_int_equal(proto_error_set(200, b, &e), 0);
	assert_string_equal(e.msg, "");
	json_decref(b);
	json_decref(odd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(statuses),
	    cmocka_unit_test(messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
