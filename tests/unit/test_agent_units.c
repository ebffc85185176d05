/* Unit tests of the agent: config table, backoff, agent.db migrations,
 * the event loop's timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/db.h"
#include "agent/loop.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"
#include "transport/http.h"

static char *write_tmp(const char *text)
{
	char *path = xstrdup("/tmp/tether-unit-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_config_file_env_set(void **state)
{
	struct agent_conf c;
	struct err e = {0};
	char *path = write_tmp("# comment\nmax_jobs = 3\n"
	                       "heartbeat_interval = 5s\nstate_dir = /x\n");

	setenv("TETHER_AGENT_MAX_JOBS", "7", 1);
	setenv("TETHER_HEARTBEAT_INTERVAL", "9s", 1); /* not the agent's */
	assert_int_equal(agent_conf_load(&c, path, &e), 0);
	assert_int_equal(c.max_jobs, 7); /* env beats the file */
	assert_int_equal(c.heartbeat_ms, 5000);
	assert_string_equal(c.state_dir, "/x");
	assert_int_equal(c.backoff_max_ms, 60000); /* default */
	assert_int_equal(agent_conf_set(&c, "max_jobs=9", &e), 0);
	assert_int_equal(c.max_jobs, 9);
	assert_int_equal(agent_conf_check(&c, &e), 0);
	unsetenv("TETHER_AGENT_MAX_JOBS");
	unsetenv("TETHER_HEARTBEAT_INTERVAL");
	agent_conf_free(&c);
	unlink(path);
	free(path);
}

static void test_config_error_names_line_and_key(void **state)
{
	struct agent_conf c;
	struct err e = {0};
	char *path = write_tmp("max_jobs = 2\n\nmax_job = 3\n");

	assert_int_equal(agent_conf_load(&c, path, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "line 3"));
	assert_non_null(strstr(e.msg, "did you mean 'max_jobs'"));
	agent_conf_free(&c);
	unlink(path);
	free(path);
}

static void test_config_check_rejects_bad_durations(void **state)
{
	struct agent_conf c;
	struct err e = {0};

	assert_int_equal(agent_conf_load(&c, "/dev/null", &e), 0);
	assert_int_equal(agent_conf_set(&c, "heartbeat_interval=100ms", &e), 0);
	assert_int_equal(agent_conf_check(&c, &e), TERR_INVAL);
	assert_int_equal(agent_conf_set(&c, "heartbeat_interval=2s", &e), 0);
	assert_int_equal(agent_conf_set(&c, "backoff_max=10ms", &e), 0);
	assert_int_equal(agent_conf_check(&c, &e), TERR_INVAL);
	agent_conf_free(&c);
}

/* Disk amounts: a size, or a share of the state dir's filesystem. */
static void test_config_disk_amounts(void **state)
{
	struct agent_conf c;
	struct err e = {0};
	int64_t n = -1;

	assert_int_equal(agent_conf_disk("5G", "/", "k", &n, &e), 0);
	assert_int_equal(n, 5LL << 30);
	assert_int_equal(agent_conf_disk("0", "/", "k", &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(agent_conf_disk("10%", "/", "k", &n, &e), 0);
	assert_true(n > 0);
	assert_int_equal(agent_conf_disk("10%", NULL, "k", &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(agent_conf_disk("150%", "/", "key_x", &n, &e),
	                 TERR_INVAL);
	assert_non_null(strstr(e.msg, "key_x"));
	assert_int_equal(agent_conf_disk("x%y", "/", "key_x", &n, &e),
	                 TERR_INVAL);
	assert_int_equal(agent_conf_load(&c, "/dev/null", &e), 0);
	assert_int_equal(agent_conf_check(&c, &e), 0);
	assert_int_equal(agent_conf_set(&c, "attempt_max_disk=lots", &e), 0);
	assert_int_equal(agent_conf_check(&c, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "attempt_max_disk"));
	agent_conf_free(&c);
	(void)state;
}

static void test_backoff_grows_jitters_caps(void **state)
{
	int64_t prev_max = 0;

	srandom(1);
	for (int n = 1; n <= 12; n++) {
		int64_t lo = INT64_MAX, hi = 0, full = 1000;
		for (int i = 1; i < n && full < 60000; i++)
			full *= 2;
		if (full > 60000)
			full = 60000;
		for (int k = 0; k < 200; k++) {
			int64_t d = conn_backoff_ms(n, 1000, 60000, -1);
			assert_true(d >= full / 2 && d <= full);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		assert_true(hi > lo); /* jitter */
		assert_true(hi >= prev_max / 2);
		prev_max = hi;
	}
	/* Retry-After wins when it is longer. */
	assert_int_equal(conn_backoff_ms(1, 1000, 60000, 120000), 120000);
	assert_true(conn_backoff_ms(1, 1000, 60000, 10) <= 1000);
}

/* A database written by schema version 1 is migrated forward. */
static void test_db_migrates_v1(void **state)
{
	char dir[] = "/tmp/tether-unit-db-XXXXXX";
	char *path;
	sqlite3 *db;
	struct err e = {0};

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/agent.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(
	        db,
	        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
	        "CREATE TABLE attempts(job TEXT NOT NULL, attempt "
	        "INTEGER NOT NULL, origin TEXT NOT NULL, state TEXT NOT "
	        "NULL, priority INTEGER NOT NULL DEFAULT 0, fifo "
	        "INTEGER NOT NULL, spec TEXT NOT NULL, snapshot TEXT, "
	        "cpus REAL NOT NULL DEFAULT 0, memory INTEGER NOT NULL "
	        "DEFAULT 0, gpus INTEGER NOT NULL DEFAULT 0, gpu_ids "
	        "TEXT, lease_ttl_ms INTEGER NOT NULL DEFAULT 0, "
	        "lease_mono_ms INTEGER NOT NULL DEFAULT 0, log_acked "
	        "INTEGER NOT NULL DEFAULT 0, events_off INTEGER NOT "
	        "NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0, "
	        "final_acked INTEGER NOT NULL DEFAULT 0, not_current "
	        "INTEGER NOT NULL DEFAULT 0, reason TEXT, message TEXT, "
	        "created_at REAL, started_at REAL, ended_at REAL, "
	        "PRIMARY KEY(job, attempt));"
	        "CREATE TABLE outbox(job TEXT NOT NULL, attempt INTEGER "
	        "NOT NULL, seq INTEGER NOT NULL, final INTEGER NOT NULL "
	        "DEFAULT 0, body TEXT NOT NULL, PRIMARY KEY(job, "
	        "attempt, seq));"
	        "INSERT INTO attempts(job, attempt, origin, state, fifo, "
	        "spec, log_acked) VALUES('42', 1, 'workspace', "
	        "'running', 1, '{}', 1234);"
	        "PRAGMA user_version = 1;",
	        NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(db_open(path, &db, &e), 0);
	assert_int_equal(db_schema_version(db), DB_SCHEMA_VERSION);
	assert_int_equal(db_exec(db,
	                         "INSERT INTO uploaded VALUES('42', 1, 'a');"
	                         "UPDATE attempts SET outputs_done = 1;"
	                         "UPDATE attempts SET runner_restarts = "
	                         "runner_restarts + 1;",
	                         &e),
	                 0);
	db_close(db);
	/* A newer schema than ours is refused. */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	assert_int_equal(db_open(path, &db, &e), TERR_UNSUPP);
	assert_non_null(strstr(e.msg, "newer"));
	assert_int_equal(rm_rf(dir, &e), 0);
	free(path);
}

static int fired;

static void on_timer(void *arg)
{
	fired++;
}

static void test_loop_timer_fires_once(void **state)
{
	struct loop *l;
	struct err e = {0};
	struct loop_timer *t;
	int64_t t0 = now_mono_ms();

	assert_int_equal(loop_new(&l, &e), 0);
	t = loop_timer_new(l, on_timer, NULL);
	loop_timer_set(t, 30);
	while (fired == 0)
		assert_int_equal(loop_run_once(l, &e), 0);
	assert_true(now_mono_ms() - t0 >= 30);
	assert_int_equal(fired, 1);
	assert_false(loop_timer_armed(t));
	/* An idle loop with one timer wakes once, not in a spin. */
	assert_true(loop_wakeups(l) <= 2);
	loop_free(l);
}

static void test_http_url_policy(void **state)
{
	assert_true(http_url_allowed("https://ws.example.com"));
	assert_true(http_url_allowed("http://127.0.0.1:8080"));
	assert_true(http_url_allowed("http://localhost:80"));
	assert_false(http_url_allowed("http://ws.example.com"));
	assert_false(http_url_allowed("http://127example.com"));
	assert_false(http_url_allowed("http://127.0.0.1.evil.com/"));
	assert_true(http_url_allowed("http://127.0.0.1"));
	assert_true(http_url_allowed("http://[::1]:9/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_file_env_set),
	    cmocka_unit_test(test_config_error_names_line_and_key),
	    cmocka_unit_test(test_config_check_rejects_bad_durations),
	    cmocka_unit_test(test_config_disk_amounts),
	    cmocka_unit_test(test_backoff_grows_jitters_caps),
	    cmocka_unit_test(test_db_migrates_v1),
	    cmocka_unit_test(test_loop_timer_fires_once),
	    cmocka_unit_test(test_http_url_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
