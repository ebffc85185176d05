/* Unit tests of the workspace's scheduling, attempt ends, lease expiry,
 * schema, credentials and certificate, on a real SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"
#include "workspace/server/ws.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
	char dir[64];
	struct ws ws;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char *db;

	snprintf(f->dir, sizeof(f->dir), "/tmp/twsunitXXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->ws.dir = f->dir;
	assert_int_equal(conf_defaults(ws_conf_table, &f->ws.conf, NULL), 0);
	db = xasprintf("%s/ws.db", f->dir);
	assert_int_equal(store_open(&f->ws, db, NULL), 0);
	free(db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(&f->ws);
	conf_free(ws_conf_table, &f->ws.conf);
	rm_rf(f->dir, NULL);
	free(f);
	return 0;
}

static void exec_ok(struct ws *ws, const char *sql)
{
	assert_int_equal(store_exec(ws, sql), 0);
}

static void add_agent(struct ws *ws, const char *id, const char *labels,
                      const char *cap)
{
	char *sql = xasprintf(
	    "INSERT INTO agents(id, name, secret_hash, labels, state, "
	    "capacity, created_at) VALUES ('%s', 'n-%s', 'h-%s', '%s', "
	    "'online', '%s', 0)",
	    id, id, id, labels, cap);
	exec_ok(ws, sql);
	free(sql);
}

static void add_job(struct ws *ws, int prio, double cpus, const char *labels,
                    int retries)
{
	char *sql = xasprintf(
	    "INSERT INTO jobs(name, state, priority, submitted_at, queued_at, "
	    "spec, retries, placement_labels, cpus, memory, gpus) VALUES "
	    "('j', 'queued', %d, 0, 0, '{\"name\":\"j\"}', %d, %s, %g, 0, 0)",
	    prio, retries, labels, cpus);
	exec_ok(ws, sql);
	free(sql);
}

static const char *job_state(struct ws *ws, int64_t id, char *buf, size_t size)
{
	sqlite3_stmt *st =
	    store_prep(ws, "SELECT state FROM jobs WHERE id = ?");

	sqlite3_bind_int64(st, 1, id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, size, "%s", sqlite3_column_text(st, 0));
	store_done(st);
	return buf;
}

static void test_schema_version(void **state)
{
	struct fixture *f = *state;
	sqlite3_stmt *st = store_prep(&f->ws, "PRAGMA user_version");

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), WS_SCHEMA_VERSION);
	store_done(st);
}

static void test_assign_priority_fifo_fit(void **state)
{
	struct fixture *f = *state;
	struct ws *ws = &f->ws;
	json_t *jobs = json_array();

	add_agent(ws, "a1", "[\"cpu\"]", "{\"cpus\": 4}");
	add_job(ws, 0, 1, "NULL", 0);        /* 1 */
	add_job(ws, 5, 1, "NULL", 0);        /* 2: first */
	add_job(ws, 0, 64, "NULL", 0);       /* 3: too big */
	add_job(ws, 9, 1, "'[\"gpu\"]'", 0); /* 4: wrong label */
	add_job(ws, 0, 1, "'[\"cpu\"]'", 0); /* 5 */
	assert_int_equal(sched_assign(ws, "a1", 2, jobs, NULL), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(jobs, 0), "job")),
	    2);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(jobs, 1), "job")),
	    1);
	assert_int_equal(sched_assign(ws, "a1", 5, jobs, NULL), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(jobs, 2), "job")),
	    5);
	assert_int_equal(sched_assign(ws, "a1", 5, jobs, NULL), 0);
	json_decref(jobs);
}

static void add_job_spec(struct ws *ws, double cpus, const char *spec)
{
	char *sql = xasprintf(
	    "INSERT INTO jobs(name, state, priority, submitted_at, queued_at, "
	    "spec, retries, cpus, memory, gpus) VALUES ('j', 'queued', 0, 0, "
	    "0, '%s', 0, %g, 0, 0)",
	    spec, cpus);
	exec_ok(ws, sql);
	free(sql);
}

/* A Slurm agent's jobs fit its partitions' nodes, not its head node
 * (issue 28); a job naming another launcher still fits the head node. */
static void test_slurm_partitions_capacity(void **state)
{
	struct fixture *f = *state;
	struct ws *ws = &f->ws;
	json_t *jobs = json_array();
	char *r;

	add_agent(ws, "s1", "[]",
	          "{\"cpus\": 2, \"memory\": 1000, \"slurm\": "
	          "{\"default_launcher\": \"slurm\", \"partitions\": ["
	          "{\"name\": \"debug\", \"default\": true, \"cpus\": 16, "
	          "\"node_cpus\": 8, \"memory\": 4000, \"node_memory\": "
	          "2000, \"gpus\": 0, \"node_gpus\": 0}, {\"name\": \"big\", "
	          "\"cpus\": 64, \"node_cpus\": 64, \"memory\": 9000, "
	          "\"node_memory\": 9000}]}}");
	add_job_spec(ws, 6, "{\"name\":\"j\"}"); /* 1 */
	add_job_spec(ws, 6,
	             "{\"name\":\"j\",\"launcher\":\"sandbox\"}"); /* 2 */
	add_job_spec(ws, 12, "{\"name\":\"j\"}");                  /* 3 */
	add_job_spec(
	    ws, 32,
	    "{\"name\":\"j\",\"slurm\":{\"partition\":\"big\"}}"); /* 4 */
	add_job_spec(
	    ws, 1,
	    "{\"name\":\"j\",\"slurm\":{\"partition\":\"nope\"}}"); /* 5 */
	assert_int_equal(sched_assign(ws, "s1", 10, jobs, NULL), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(jobs, 0), "job")),
	    1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(jobs, 1), "job")),
	    4);
	r = sched_queue_reason(ws, 2);
	assert_non_null(strstr(r, "cpus request"));
	free(r);
	r = sched_queue_reason(ws, 3); /* more than one debug node has */
	assert_non_null(strstr(r, "cpus request"));
	free(r);
	r = sched_queue_reason(ws, 5);
	assert_non_null(strstr(r, "the job's slurm.partition"));
	free(r);
	json_decref(jobs);
}

static void test_unschedulable_reason(void **state)
{
	struct fixture *f = *state;
	struct ws *ws = &f->ws;
	char *r;

	add_job(ws, 0, 64, "NULL", 0);
	r = sched_queue_reason(ws, 1);
	assert_non_null(r);
	assert_non_null(strstr(r, "no agent is registered"));
	free(r);
	add_agent(ws, "a1", "[]", "{\"cpus\": 2}");
	r = sched_queue_reason(ws, 1);
	assert_non_null(strstr(r, "cpus"));
	free(r);
	add_agent(ws, "a2", "[]", "{\"cpus\": 128}");
	assert_null(sched_queue_reason(ws, 1));
}

static void test_end_attempt_requeue_and_retries(void **state)
{
	struct fixture *f = *state;
	struct ws *ws = &f->ws;
	json_t *jobs = json_array();
	char s[32];

	add_agent(ws, "a1", "[]", "{\"cpus\": 4}");
	add_job(ws, 0, 0, "NULL", 1);
	assert_int_equal(sched_assign(ws, "a1", 1, jobs, NULL), 1);
	assert_int_equal(sched_attempt_check(ws, 1, 1, "a1"), 0);
	assert_int_equal(sched_attempt_check(ws, 1, 1, "other"), TERR_NOTFOUND);
	sched_end_attempt(ws, 1, 1, "lost", true);
	assert_string_equal(job_state(ws, 1, s, sizeof(s)), "queued");
	assert_int_equal(sched_attempt_check(ws, 1, 1, "a1"), TERR_CONFLICT);
	assert_int_equal(sched_assign(ws, "a1", 1, jobs, NULL), 1);
	/* a hand-back does not use a retry */
	sched_end_attempt(ws, 1, 2, "handed_back", false);
	assert_string_equal(job_state(ws, 1, s, sizeof(s)), "queued");
	assert_int_equal(sched_assign(ws, "a1", 1, jobs, NULL), 1);
	sched_end_attempt(ws, 1, 3, "lost", true);
	assert_string_equal(job_state(ws, 1, s, sizeof(s)), "lost");
	/* an ended superseded attempt does not touch the job */
	sched_end_attempt(ws, 1, 1, "succeeded", true);
	assert_string_equal(job_state(ws, 1, s, sizeof(s)), "lost");
	json_decref(jobs);
}

static void test_expire(void **state)
{
	struct fixture *f = *state;
	struct ws *ws = &f->ws;
	json_t *jobs = json_array();
	char s[32];

	add_agent(ws, "a1", "[]", "{\"cpus\": 4}");
	add_job(ws, 0, 0, "NULL", 0);
	assert_int_equal(sched_assign(ws, "a1", 1, jobs, NULL), 1);
	assert_int_equal(sched_expire(ws), 0);
	exec_ok(ws, "UPDATE attempts SET lease_deadline = 0");
	assert_int_equal(sched_expire(ws), 1);
	assert_string_equal(job_state(ws, 1, s, sizeof(s)), "lost");
	json_decref(jobs);
}

static void test_tokens_and_names(void **state)
{
	char a[80], b[80], h[65];

	auth_new_token("tr_", a, sizeof(a));
	auth_new_token("tr_", b, sizeof(b));
	assert_int_equal(strlen(a), 3 + 48);
	assert_string_not_equal(a, b);
	auth_hash("x", h);
	assert_string_equal(
	    h,
	    "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
	assert_true(auth_valid_name("node-1.a_b", 128));
	assert_false(auth_valid_name("", 128));
	assert_false(auth_valid_name("-x", 128));
	assert_false(auth_valid_name("a b", 128));
	assert_false(auth_valid_name("a/b", 128));
	assert_false(auth_valid_name("abc", 2));
}

static void test_selfsigned_cert(void **state)
{
	struct fixture *f = *state;
	char *c = xasprintf("%s/t.crt", f->dir),
	     *k = xasprintf("%s/t.key", f->dir);
	FILE *fp;
	X509 *x;

	assert_int_equal(tls_write_selfsigned(c, k, NULL), 0);
	fp = fopen(c, "r");
	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ca(x), 1);
	X509_free(x);
	free(c);
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_schema_version, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_assign_priority_fifo_fit,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slurm_partitions_capacity,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unschedulable_reason, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_end_attempt_requeue_and_retries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
	    cmocka_unit_test(test_tokens_and_names),
	    cmocka_unit_test_setup_teardown(test_selfsigned_cert, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
