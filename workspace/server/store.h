/* store.h: the workspace's store interface (store.c).  All SQL goes
 * through these: one SQLite connection (WAL, synchronous=FULL) behind one
 * mutex, the schema and its forward migrations, transactions, statement
 * and column helpers, so that a second store (PostgreSQL) can be added
 * behind the same names without touching the API code. */
#ifndef TETHER_WS_STORE_H
#define TETHER_WS_STORE_H

#include <jansson.h>
#include <sqlite3.h>

struct err;
struct ws;

int store_open(struct ws *ws, const char *path, struct err *e);
void store_close(struct ws *ws);
void store_lock(struct ws *ws);
void store_unlock(struct ws *ws);
int store_begin(struct ws *ws);
int store_commit(struct ws *ws);
void store_rollback(struct ws *ws);
/* Prepare a statement (or take a cached one of the same SQL); aborts on
 * a programming error (bad SQL).  Give it back with store_done. */
sqlite3_stmt *store_prep(struct ws *ws, const char *sql);
/* Done with a statement from store_prep: reset and kept for reuse. */
void store_done(sqlite3_stmt *st);
/* Run a statement with no result rows; returns 0 or TERR_IO. */
int store_exec(struct ws *ws, const char *sql);
/* Column as a fresh JSON value parsed from text (NULL column -> null). */
json_t *store_col_json(sqlite3_stmt *st, int col);
/* Column as a JSON string or null. */
json_t *store_col_str(sqlite3_stmt *st, int col);
json_t *store_col_int(sqlite3_stmt *st, int col);
json_t *store_col_real(sqlite3_stmt *st, int col);

#endif
