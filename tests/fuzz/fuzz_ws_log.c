/* fuzz_ws_log.c: the workspace's log-offset handling (workspace/server/
 * logs.c, POST /attempts/J/A/log?offset=N), driven by a sequence of
 * appends an agent (or a replaying, retrying, confused agent) could send.
 *
 * The log is a slice of one reference stream, so whatever the order,
 * overlap, gaps, duplicates or garbage offsets, the protocol's promise can
 * be checked after every call: the stored bytes are exactly a prefix of
 * the stream (no byte lost, none duplicated, none out of place), a gap is
 * answered 416 without a change, and log_length matches the bytes stored
 * (the attempt's log file holds them: logs/1/1 under a temp directory).
 *
 * The handler reads its query argument through libmicrohttpd; the target
 * is linked with --wrap=MHD_lookup_connection_value and answers it. */
#include "workspace/server/http.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_LEN (1 << 20)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
const char *__wrap_MHD_lookup_connection_value(struct MHD_Connection *c,
                                               enum MHD_ValueKind kind,
                                               const char *key);

static char offset_arg[64];
static unsigned char ref[REF_LEN];

const char *__wrap_MHD_lookup_connection_value(struct MHD_Connection *c,
                                               enum MHD_ValueKind kind,
                                               const char *key)
{
	return strcmp(key, "offset") == 0 ? offset_arg : NULL;
}

static struct ws *fuzz_ws(void)
{
	static struct ws ws;
	static bool ready;
	struct err e = {0};

	if (ready)
		return &ws;
	log_set_level(LOG_ERROR);
	for (size_t i = 0; i < REF_LEN; i++)
		ref[i] = (unsigned char)(i * 131 + i / 251 + 7);
	static char dir[] = "/tmp/fuzz-ws-log-XXXXXX";
	if (mkdtemp(dir) == NULL)
		abort();
	ws.dir = dir;
	pthread_mutex_init(&ws.wait_mu, NULL);
	pthread_cond_init(&ws.wait_cond, NULL);
	if (store_open(&ws, ":memory:", &e) < 0 ||
	    store_exec(&ws, "INSERT INTO jobs(id, name, state, priority, "
	                    "submitted_at, queued_at, spec, retries, cpus, "
	                    "memory, gpus) VALUES (1, 'j', 'running', 0, 0, 0, "
	                    "'{}', 0, 0, 0, 0); INSERT INTO attempts(job, "
	                    "attempt, agent_id, state, started_at, "
	                    "lease_deadline) VALUES (1, 1, 'a1', 'running', 0, "
	                    "0)") < 0)
		abort();
	ready = true;
	return &ws;
}

static int64_t stored_length(struct ws *ws)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT log_length FROM attempts WHERE job = 1");
	int64_t n = -1;

	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	store_done(st);
	return n;
}

/* The attempt's log file must hold the reference bytes [0, len). */
static void check_bytes(struct ws *ws, int64_t len)
{
	char *path = log_path(ws, 1, 1);
	FILE *f = fopen(path, "rb");
	static unsigned char got[REF_LEN];
	size_t n = 0;

	free(path);
	if (f != NULL) {
		n = fread(got, 1, sizeof(got), f);
		fclose(f);
	}
	if ((int64_t)n < len || len > REF_LEN ||
	    (len > 0 && memcmp(got, ref, (size_t)len) != 0))
		abort();
}

/* One append as the server runs it: the pre-check before the body, the
 * body in two pieces to the sink (a skip may straddle them), the handler,
 * then the request's end. */
static int append(struct ws *ws, const void *body, size_t n)
{
	static char seg0[] = "attempts", seg1[] = "1", seg2[] = "1";
	const struct route *rt = &routes_logs[0];
	struct req r = {.ws = ws, .fd = -1};
	size_t half = n / 3;
	int status;

	r.segs[0] = seg0, r.segs[1] = seg1, r.segs[2] = seg2;
	r.nseg = 3;
	snprintf(r.agent_id, sizeof(r.agent_id), "a1");
	r.in_pre = true;
	status = rt->pre(&r);
	r.in_pre = false;
	if (status == 0) {
		if (rt->sink(&r, body, half) < 0 ||
		    rt->sink(&r, (const char *)body + half, n - half) < 0)
			abort();
		status = rt->fn(&r);
	}
	if (r.state_free != NULL)
		r.state_free(&r);
	if (r.resp != NULL)
		MHD_destroy_response(r.resp);
	free(r.pre_text);
	return status;
}

/* One op: a well-formed offset with a reference slice, or a raw offset
 * string whose body is the slice at what strtoll makes of it. */
static size_t one_op(struct ws *ws, const unsigned char *d, size_t n,
                     int64_t *model)
{
	int64_t off, want;
	size_t len, used;
	int status;
	char *end;

	if (n < 7)
		return n;
	if (d[0] & 1) {
		off = (int64_t)((uint32_t)d[1] | (uint32_t)d[2] << 8 |
		                (uint32_t)d[3] << 16) %
		      (*model + 4096);
		len = ((size_t)d[4] | (size_t)d[5] << 8) % 8192;
		snprintf(offset_arg, sizeof(offset_arg), "%" PRId64, off);
		used = 6;
	} else {
		size_t k = d[1] % 24 < n - 2 ? d[1] % 24 : n - 2;
		memcpy(offset_arg, d + 2, k);
		offset_arg[k] = '\0';
		len = d[2 + k - (k > 0)] % 64;
		used = 2 + k;
		errno = 0;
		off = strtoll(offset_arg, &end, 10);
		if (end == offset_arg || *end || errno != 0 || off < 0)
			off = -1;
	}
	if (off < 0 || off >= REF_LEN) /* garbage, or far past any log */
		status = append(ws, "X", 1), len = 1;
	else
		status = append(ws, ref + off,
		                off + (int64_t)len > REF_LEN ? 0 : len);
	want = off >= 0 && off <= *model && off + (int64_t)len > *model
	           ? off + (int64_t)len
	           : *model;
	if ((d[0] & 1) && off > *model && status != 416)
		abort(); /* a gap must be answered with the length */
	/* Well-formed offsets get exact answers; for raw text the server may
	 * refuse what strtoll takes, but what it stores must still fit. */
	if ((d[0] & 1) && off <= *model && status != 200)
		abort();
	if (status == 200 || status == 416)
		*model = want;
	if (stored_length(ws) != *model)
		abort();
	return used;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct ws *ws = fuzz_ws();
	int64_t model = 0;
	size_t used;

	while (size > 0) {
		used = one_op(ws, data, size, &model);
		data += used, size -= used;
	}
	check_bytes(ws, model);
	char *logs = log_path(ws, 1, 0);
	if (rm_rf(logs, NULL) < 0 ||
	    store_exec(ws, "UPDATE attempts SET log_length = 0") < 0)
		abort();
	free(logs);
	return 0;
}
