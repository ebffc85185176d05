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
/* Commits that need not wait for the disk: on, the next commits are
 * atomic and made durable by the next synced one (synchronous=NORMAL);
 * off, every commit syncs again (FULL, the default).  Only for writes that
 * the agent can redo from a durable source (docs/recovery.md,
 * "Durability"). */
int db_relaxed(sqlite3 *db, bool on, struct err *e);
/* Step st (no rows) in one relaxed commit, logging errors for job: for
 * what a power loss may take back because the workspace takes it again
 * (events and log bytes are acknowledged by seq and offset: a resent one
 * changes nothing). */
void db_step_relaxed(sqlite3 *db, sqlite3_stmt *st, const char *job);
/* Prepare, reporting errors in *e. */
int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct err *e);
/* Step a statement that returns no rows, then finalize it. */
int db_step_done(sqlite3 *db, sqlite3_stmt *st, struct err *e);
/* meta key/value; *out heap string or NULL when missing. */
int db_meta_get(sqlite3 *db, const char *key, char **out, struct err *e);
int db_meta_set(sqlite3 *db, const char *key, const char *value, struct err *e);
int db_schema_version(sqlite3 *db);

#endif
