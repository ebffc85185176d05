/* store.c: the workspace database: open (WAL, synchronous=FULL so that every
 * acknowledged write is on disk before the reply), schema and forward
 * migrations, and small statement helpers.  One connection, one mutex. */
#include "workspace/server/store.h"
#include "workspace/server/ws.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* migrations[i] brings a database from schema version i to i + 1.
 * Never edit a released entry; append a new one and bump
 * WS_SCHEMA_VERSION. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE tokens(id TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL,"
    " uses_left INTEGER NOT NULL, expires_at REAL NOT NULL,"
    " labels TEXT NOT NULL, created_at REAL NOT NULL);"
    "CREATE TABLE agents(id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " machine_id TEXT, secret_hash TEXT NOT NULL, new_secret_hash TEXT,"
    " labels TEXT NOT NULL, state TEXT NOT NULL, capacity TEXT NOT NULL,"
    " free TEXT, running TEXT, last_seen REAL, version TEXT,"
    " transport TEXT, os TEXT, kernel TEXT, facts TEXT,"
    " queue_depth INTEGER NOT NULL DEFAULT 2,"
    " drain INTEGER NOT NULL DEFAULT 0, drain_sent INTEGER NOT NULL"
    " DEFAULT 0, created_at REAL NOT NULL);"
    "CREATE INDEX agents_name ON agents(name);"
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,"
    " priority INTEGER NOT NULL, submitted_at REAL NOT NULL,"
    " queued_at REAL NOT NULL, ended_at REAL, spec TEXT NOT NULL,"
    " retries INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,"
    " snapshot TEXT, placement_agent TEXT, placement_labels TEXT,"
    " cpus REAL NOT NULL, memory INTEGER NOT NULL, gpus INTEGER NOT NULL,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_queue ON jobs(state, priority, id);"
    "CREATE TABLE job_secrets(job INTEGER NOT NULL, name TEXT NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY(job, name));"
    "CREATE TABLE attempts(job INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " agent_id TEXT NOT NULL, state TEXT NOT NULL, started_at REAL NOT NULL,"
    " ended_at REAL, lease_deadline REAL NOT NULL,"
    " log_length INTEGER NOT NULL DEFAULT 0, exit_code INTEGER,"
    " signal INTEGER, reason TEXT, peak_memory INTEGER, cpu_seconds REAL,"
    " durations TEXT, commit_id TEXT, message TEXT,"
    " acked_seq INTEGER NOT NULL DEFAULT 0,"
    " counted INTEGER NOT NULL DEFAULT 1,"
    " cancel_sent INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(job, attempt));"
    "CREATE INDEX attempts_agent ON attempts(agent_id, state);"
    "CREATE TABLE events(job INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY(job, attempt, seq));"
    "CREATE TABLE log_chunks(job INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY(job, attempt, offset));"
    "CREATE TABLE outputs(job INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " created_at REAL NOT NULL, PRIMARY KEY(job, attempt, path));"
    "CREATE TABLE snapshots(id TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    " created_at REAL NOT NULL);",
    /* 1 -> 2: indexes for the lease sweeper and retention */
    "CREATE INDEX attempts_live ON attempts(state, lease_deadline);"
    "CREATE INDEX jobs_ended ON jobs(ended_at);",
    /* 2 -> 3: checkpoints and progress (docs/checkpointing.md) */
    "CREATE TABLE IF NOT EXISTS checkpoints(job INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " size INTEGER NOT NULL, created_at REAL NOT NULL,"
    " PRIMARY KEY(job, attempt));"
    "CREATE TABLE IF NOT EXISTS progress(job INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, value REAL NOT NULL,"
    " updated_at REAL NOT NULL, PRIMARY KEY(job, attempt));",
    /* 3 -> 4: find an agent by its secret without reading every agent
     * (each agent request authenticates: docs/performance.md F2d) */
    "CREATE INDEX IF NOT EXISTS agents_secret ON agents(secret_hash);"
    "CREATE INDEX IF NOT EXISTS agents_new_secret ON"
    " agents(new_secret_hash) WHERE new_secret_hash IS NOT NULL;",
    /* 4 -> 5: multi-node jobs (docs/multi-node.md): rank r of the gang
     * whose rank 0 is attempt g is attempt g + r; jobs.attempt names the
     * current gang (its rank 0).  Existing attempts are rank 0. */
    "ALTER TABLE attempts ADD COLUMN rank INTEGER NOT NULL DEFAULT 0;"
    /* a rank not yet listed by its agent's poll: 0 (gang_start_timeout) */
    "ALTER TABLE attempts ADD COLUMN accepted INTEGER NOT NULL DEFAULT 1;"
    /* the start barrier: a rank's `ready` event ({"address", "port"}),
     * and whether its agent was sent the rendezvous */
    "ALTER TABLE attempts ADD COLUMN ready TEXT;"
    "ALTER TABLE attempts ADD COLUMN rendezvous_sent INTEGER NOT NULL "
    "DEFAULT 0;"
    /* why the job's last gang did not start (its queue_reason) */
    "ALTER TABLE jobs ADD COLUMN gang_note TEXT;",
};
_Static_assert(sizeof(migrations) / sizeof(*migrations) == WS_SCHEMA_VERSION,
               "one migration per schema version");

double ws_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void store_lock(struct ws *ws)
{
	pthread_mutex_lock(&ws->db_mu);
}

void store_unlock(struct ws *ws)
{
	pthread_mutex_unlock(&ws->db_mu);
}

/* Prepared statements are kept for reuse (docs/performance.md F2: the
 * parser was a visible share of the workspace's CPU): store_prep hands out
 * a cached statement of the same SQL that is not in use, store_done resets
 * it and gives it back.  Statements in use at once (nested, or on another
 * thread) get copies; past STMT_CACHE distinct texts nothing more is kept. */
#define STMT_CACHE 512

struct stmt_slot {
	char *sql;
	sqlite3_stmt *st;
	bool busy;
};

static struct stmt_slot stmt_cache[STMT_CACHE];
static int stmt_count;
static pthread_mutex_t stmt_mu = PTHREAD_MUTEX_INITIALIZER;

sqlite3_stmt *store_prep(struct ws *ws, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int i;

	pthread_mutex_lock(&stmt_mu);
	for (i = 0; i < stmt_count; i++) {
		if (!stmt_cache[i].busy &&
		    sqlite3_db_handle(stmt_cache[i].st) == ws->db &&
		    strcmp(stmt_cache[i].sql, sql) == 0) {
			stmt_cache[i].busy = true;
			pthread_mutex_unlock(&stmt_mu);
			return stmt_cache[i].st;
		}
	}
	pthread_mutex_unlock(&stmt_mu);
	if (sqlite3_prepare_v3(ws->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
	                       NULL) != SQLITE_OK)
		fatalx("prepare '%s': %s", sql, sqlite3_errmsg(ws->db));
	pthread_mutex_lock(&stmt_mu);
	if (stmt_count < STMT_CACHE) {
		stmt_cache[stmt_count].sql = xstrdup(sql);
		stmt_cache[stmt_count].st = st;
		stmt_cache[stmt_count++].busy = true;
	}
	pthread_mutex_unlock(&stmt_mu);
	return st;
}

void store_done(sqlite3_stmt *st)
{
	int i;

	if (st == NULL)
		return;
	pthread_mutex_lock(&stmt_mu);
	for (i = 0; i < stmt_count; i++) {
		if (stmt_cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			stmt_cache[i].busy = false;
			pthread_mutex_unlock(&stmt_mu);
			return;
		}
	}
	pthread_mutex_unlock(&stmt_mu);
	sqlite3_finalize(st);
}

/* Finalize the statements kept for db (before it closes). */
static void stmt_cache_drop(sqlite3 *db)
{
	int i, n = 0;

	pthread_mutex_lock(&stmt_mu);
	for (i = 0; i < stmt_count; i++) {
		if (sqlite3_db_handle(stmt_cache[i].st) == db) {
			sqlite3_finalize(stmt_cache[i].st);
			free(stmt_cache[i].sql);
		} else {
			stmt_cache[n++] = stmt_cache[i];
		}
	}
	stmt_count = n;
	pthread_mutex_unlock(&stmt_mu);
}

int store_exec(struct ws *ws, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(ws->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("sql '%.60s': %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return TERR_IO;
	}
	return 0;
}

int store_begin(struct ws *ws)
{
	return store_exec(ws, "BEGIN IMMEDIATE");
}

int store_commit(struct ws *ws)
{
	return store_exec(ws, "COMMIT");
}

void store_rollback(struct ws *ws)
{
	if (!sqlite3_get_autocommit(ws->db))
		store_exec(ws, "ROLLBACK");
}

json_t *store_col_json(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	json_t *v;

	if (t == NULL)
		return json_null();
	v = json_loads(t, 0, NULL);
	return v ? v : json_null();
}

json_t *store_col_str(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	return t ? json_string(t) : json_null();
}

json_t *store_col_int(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	return json_integer(sqlite3_column_int64(st, col));
}

json_t *store_col_real(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	return json_real(sqlite3_column_double(st, col));
}

static int store_migrate(struct ws *ws, struct err *e)
{
	int version = 0, n = (int)(sizeof(migrations) / sizeof(*migrations));
	sqlite3_stmt *st;

	st = store_prep(ws, "PRAGMA user_version");
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	store_done(st);
	if (version > n)
		return err_set(e, TERR_UNSUPP,
		               "database schema version %d is newer than "
		               "this server (%d): upgrade tether-workspace",
		               version, n);
	for (; version < n; version++) {
		char *sql = xasprintf("BEGIN; %s PRAGMA user_version = %d; "
		                      "COMMIT;",
		                      migrations[version], version + 1);
		int r = store_exec(ws, sql);
		free(sql);
		if (r < 0) {
			store_rollback(ws);
			return err_set(e, TERR_IO,
			               "migrate the database to schema %d: %s",
			               version + 1, sqlite3_errmsg(ws->db));
		}
		log_info("database schema now version %d", version + 1);
	}
	return 0;
}

int store_open(struct ws *ws, const char *path, struct err *e)
{
	int r;

	pthread_mutex_init(&ws->db_mu, NULL);
	if (sqlite3_open_v2(path, &ws->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                        SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK)
		return err_set(e, TERR_IO, "open database %s: %s", path,
		               ws->db ? sqlite3_errmsg(ws->db) : "no memory");
	sqlite3_busy_timeout(ws->db, 5000);
	if ((r = store_exec(ws, "PRAGMA journal_mode=WAL; PRAGMA "
	                        "synchronous=FULL; PRAGMA foreign_keys=ON")) <
	    0)
		return err_set(e, r, "database %s: cannot enable WAL", path);
	return store_migrate(ws, e);
}

void store_close(struct ws *ws)
{
	if (ws->db != NULL)
		stmt_cache_drop(ws->db);
	if (ws->db != NULL)
		sqlite3_close(ws->db);
	ws->db = NULL;
}
