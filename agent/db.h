/* db.h: agent.db (SQLite, WAL): identity, the local queue, attempts,
 * acknowledged log offsets, the status outbox, uploaded outputs.
 * Schema and migrations in db.c; every state change is one transaction. */
#ifndef TETHER_AGENT_DB_H
#define TETHER_AGENT_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct err;

#define DB_SCHEMA_VERSION 3

/* Open (create) state_dir/agent.db and migrate it forward. */
int db_open(const char *path, sqlite3 **out, struct err *e);
void db_close(sqlite3 *db);
/* Run SQL without results. */
int db_exec(sqlite3 *db, const char *sql, struct err *e);
int db_begin(sqlite3 *db, struct err *e);
int db_commit(sqlite3 *db, struct err *e);
void db_rollback(sqlite3 *db);
/* Prepare, reporting errors in *e. */
int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct err *e);
/* Step a statement that returns no rows, then finalize it. */
int db_step_done(sqlite3 *db, sqlite3_stmt *st, struct err *e);
/* meta key/value; *out heap string or NULL when missing. */
int db_meta_get(sqlite3 *db, const char *key, char **out, struct err *e);
int db_meta_set(sqlite3 *db, const char *key, const char *value, struct err *e);
int db_schema_version(sqlite3 *db);

#endif
