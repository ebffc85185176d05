/* db.c: agent.db schema, forward migrations and small helpers. */
#include "agent/db.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Migration N takes the schema from version N to N+1.  Never edit one that
 * shipped: append a new one. */
static const char *const db_migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE attempts("
    " job TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " origin TEXT NOT NULL," /* workspace | local */
    " state TEXT NOT NULL,"  /* queued running finishing done */
    " priority INTEGER NOT NULL DEFAULT 0,"
    " fifo INTEGER NOT NULL,"
    " spec TEXT NOT NULL, snapshot TEXT,"
    " cpus REAL NOT NULL DEFAULT 0, memory INTEGER NOT NULL DEFAULT 0,"
    " gpus INTEGER NOT NULL DEFAULT 0, gpu_ids TEXT,"
    " lease_ttl_ms INTEGER NOT NULL DEFAULT 0,"
    " lease_mono_ms INTEGER NOT NULL DEFAULT 0,"
    " log_acked INTEGER NOT NULL DEFAULT 0,"
    " events_off INTEGER NOT NULL DEFAULT 0,"
    " last_seq INTEGER NOT NULL DEFAULT 0,"
    " final_acked INTEGER NOT NULL DEFAULT 0,"
    " not_current INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT, message TEXT,"
    " created_at REAL, started_at REAL, ended_at REAL,"
    " PRIMARY KEY(job, attempt));"
    "CREATE TABLE outbox(job TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, final INTEGER NOT NULL DEFAULT 0,"
    " body TEXT NOT NULL, PRIMARY KEY(job, attempt, seq));",
    /* 1 -> 2: resumable output uploads, directory cleanup */
    "CREATE TABLE uploaded(job TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " path TEXT NOT NULL, PRIMARY KEY(job, attempt, path));"
    "ALTER TABLE attempts ADD COLUMN outputs_done INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE attempts ADD COLUMN dir_removed INTEGER NOT NULL"
    " DEFAULT 0;",
    /* 2 -> 3: runners started again after dying without a result */
    "ALTER TABLE attempts ADD COLUMN runner_restarts INTEGER NOT NULL"
    " DEFAULT 0;",
};

int db_exec(sqlite3 *db, const char *sql, struct err *e)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int r = err_set(e, TERR_IO, "agent.db: %s",
		                msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

int db_begin(sqlite3 *db, struct err *e)
{
	return db_exec(db, "BEGIN IMMEDIATE", e);
}

int db_commit(sqlite3 *db, struct err *e)
{
	return db_exec(db, "COMMIT", e);
}

void db_rollback(sqlite3 *db)
{
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int db_relaxed(sqlite3 *db, bool on, struct err *e)
{
	return db_exec(
	    db, on ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
	    e);
}

void db_step_relaxed(sqlite3 *db, sqlite3_stmt *st, const char *job)
{
	struct err e = {0};

	if (db_relaxed(db, true, &e) < 0) {
		sqlite3_finalize(st);
		log_error("agent.db: %s", e.msg);
		return;
	}
	if (db_step_done(db, st, &e) < 0)
		log_error("job=%s: %s", job, e.msg);
	if (db_relaxed(db, false, &e) < 0)
		log_error("agent.db: synchronous=FULL again: %s", e.msg);
}

int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct err *e)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return err_set(e, TERR_IO, "agent.db: %s: %s",
		               sqlite3_errmsg(db), sql);
	return 0;
}

int db_step_done(sqlite3 *db, sqlite3_stmt *st, struct err *e)
{
	int rc = sqlite3_step(st), r = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = err_set(e, TERR_IO, "agent.db: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return r;
}

int db_schema_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int db_migrate(sqlite3 *db, struct err *e)
{
	int n = (int)(sizeof(db_migrations) / sizeof(db_migrations[0]));
	char pragma[64];
	int v, r;

	for (;;) {
		/* Read the version inside the write transaction: another
		 * process (a local command) may be migrating too. */
		if ((r = db_begin(db, e)) < 0)
			return r;
		v = db_schema_version(db);
		if (v > n) {
			db_rollback(db);
			return err_set(e, TERR_UNSUPP,
			               "agent.db has schema version %d, newer "
			               "than this agent (%d): upgrade "
			               "tether-agent",
			               v, n);
		}
		if (v == n) {
			db_rollback(db);
			return 0;
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
		         v + 1);
		if ((r = db_exec(db, db_migrations[v], e)) < 0 ||
		    (r = db_exec(db, pragma, e)) < 0) {
			db_rollback(db);
			return err_wrap(e, "migrate agent.db to version %d",
			                v + 1);
		}
		if ((r = db_commit(db, e)) < 0)
			return r;
	}
}

int db_open(const char *path, sqlite3 **out, struct err *e)
{
	sqlite3 *db = NULL;
	int r;

	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                        SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		r = err_set(e, TERR_IO, "%s: %s", path,
		            db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return r;
	}
	sqlite3_busy_timeout(db, 5000);
	if ((r = db_exec(db, "PRAGMA journal_mode=WAL", e)) < 0 ||
	    (r = db_exec(db, "PRAGMA synchronous=FULL", e)) < 0 ||
	    (r = db_migrate(db, e)) < 0) {
		sqlite3_close(db);
		return err_wrap(e, "%s", path);
	}
	*out = db;
	return 0;
}

void db_close(sqlite3 *db)
{
	sqlite3_close(db);
}

int db_meta_get(sqlite3 *db, const char *key, char **out, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	*out = NULL;
	if ((r = db_prepare(db, "SELECT value FROM meta WHERE key = ?", &st,
	                    e)) < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0) != NULL)
		*out = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return 0;
}

int db_meta_set(sqlite3 *db, const char *key, const char *value, struct err *e)
{
	sqlite3_stmt *st;
	int r;

	if ((r = db_prepare(
	         db,
	         "INSERT INTO meta(key, value) VALUES(?, ?) ON "
	         "CONFLICT(key) DO UPDATE SET value = excluded.value",
	         &st, e)) < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return db_step_done(db, st, e);
}
