/* cmd-status.c: `tether-agent status` (what runs, what waits, what is
 * unsent, why leasing stopped) and `tether-agent jobs`. */
#include "agent/cmd.h"
#include "agent/creds.h"
#include "agent/db.h"
#include "agent/harden.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

sqlite3 *cmd_open_db(struct cmd_ctx *c)
{
	char *path = xasprintf("%s/agent.db", c->conf.state_dir);
	struct err e = {0};
	sqlite3 *db = NULL;

	if (mkdir_p(c->conf.state_dir, 0700, &e) < 0 ||
	    db_open(path, &db, &e) < 0)
		fprintf(stderr, "tether-agent: %s\n", e.msg);
	free(path);
	return db;
}

static int64_t cmd_count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void cmd_meta_line(sqlite3 *db, const char *key, const char *label)
{
	char *v = NULL;

	if (db_meta_get(db, key, &v, NULL) == 0 && v != NULL && v[0] != '\0')
		printf("%-12s %s\n", label, v);
	free(v);
}

static int cmd_status_main(struct cmd_ctx *c, int argc, char **argv)
{
	sqlite3 *db = cmd_open_db(c);
	pid_t pid = creds_lock_holder(c->conf.state_dir);
	struct creds cr = {0};
	char why[512];

	if (db == NULL)
		return 1;
	if (pid > 0)
		printf("%-12s running (pid %d)\n", "agent", (int)pid);
	else
		printf("%-12s not running\n", "agent");
	if (creds_load(c->conf.state_dir, &cr, NULL) == 0)
		printf("%-12s %s (%s) at %s\n", "registered",
		       cr.name ? cr.name : "?", cr.agent_id,
		       cr.workspace ? cr.workspace : "?");
	else
		printf("%-12s no\n", "registered");
	creds_free(&cr);
	cmd_meta_line(db, "auth_error", "auth");
	cmd_meta_line(db, "conn_error", "connection");
	if (harden_disk_check(c->conf.state_dir, harden_disk_min_free(&c->conf),
	                      why, sizeof(why)))
		printf("%-12s %s\n", "disk", why);
	printf("%-12s %lld\n", "running",
	       (long long)cmd_count(db, "SELECT COUNT(*) FROM attempts WHERE "
	                                "state = 'running'"));
	printf("%-12s %lld\n", "queued",
	       (long long)cmd_count(db, "SELECT COUNT(*) FROM attempts WHERE "
	                                "state = 'queued'"));
	printf("%-12s %lld attempts, %lld events\n", "unsent",
	       (long long)cmd_count(db, "SELECT COUNT(*) FROM attempts WHERE "
	                                "state = 'finishing'"),
	       (long long)cmd_count(db, "SELECT COUNT(*) FROM outbox"));
	db_close(db);
	return 0;
}

static int cmd_jobs_main(struct cmd_ctx *c, int argc, char **argv)
{
	sqlite3 *db = cmd_open_db(c);
	sqlite3_stmt *st;

	if (db == NULL)
		return 1;
	if (sqlite3_prepare_v2(db,
	                       "SELECT job, attempt, origin, state, priority, "
	                       "COALESCE(reason, ''), COALESCE(message, '') "
	                       "FROM attempts ORDER BY fifo",
	                       -1, &st, NULL) != SQLITE_OK) {
		db_close(db);
		return 1;
	}
	printf("%-8s %-7s %-9s %-9s %-8s %s\n", "JOB", "ATTEMPT", "ORIGIN",
	       "STATE", "PRIORITY", "REASON");
	while (sqlite3_step(st) == SQLITE_ROW)
		printf("%-8s %-7lld %-9s %-9s %-8lld %s%s%s\n",
		       sqlite3_column_text(st, 0),
		       (long long)sqlite3_column_int64(st, 1),
		       sqlite3_column_text(st, 2), sqlite3_column_text(st, 3),
		       (long long)sqlite3_column_int64(st, 4),
		       sqlite3_column_text(st, 5),
		       *sqlite3_column_text(st, 6) ? ": " : "",
		       sqlite3_column_text(st, 6));
	sqlite3_finalize(st);
	db_close(db);
	return 0;
}

const struct cmd_entry cmd_status = {
    "status", "", "what runs, what waits, what is unsent", cmd_status_main};
const struct cmd_entry cmd_jobs = {"jobs", "", "list the jobs on this node",
                                   cmd_jobs_main};
