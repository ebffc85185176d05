/* yarn.h: the `yarn` command line (docs/spark.md, "YARN").
 * For Spark jobs on YARN the agent and the runner drive Hadoop's own
 * client, `yarn node -list` and `yarn application -status/-kill`, as an
 * argv (never a shell), with HADOOP_CONF_DIR set when the agent names one
 * (yarn_conf_dir) and a deadline on every call: each call starts a JVM. */
#ifndef TETHER_YARN_H
#define TETHER_YARN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct err;

#define YARN_TIMEOUT_MS 30000 /* one call: a JVM start and one RPC */

/* The RUNNING node managers of `yarn node -list -states RUNNING
 * -showDetails` (memory in MiB). */
struct yarn_nodes {
	int64_t nodes;
	int64_t vcores, vcores_used, max_node_vcores;
	int64_t memory_mb, memory_used_mb, max_node_memory_mb;
};

/* Run `<cmd> args...` (cmd: yarn_command, a path or a name on PATH;
 * conf_dir: HADOOP_CONF_DIR and YARN_CONF_DIR, or NULL to inherit) with
 * out capped by its max.  A non-zero exit is an error naming the command
 * and the last line it printed on stderr. */
int yarn_run(const char *cmd, const char *conf_dir, const char *const *args,
             struct buf *out, int64_t timeout_ms, struct err *e);
/* Parse the node list (pure); -1 when it is not one. */
int yarn_nodes_parse(const char *text, struct yarn_nodes *n);
/* The application's State (NEW ... RUNNING, FINISHED, FAILED, KILLED) from
 * `yarn application -status` (pure); false when not found. */
bool yarn_app_state_parse(const char *text, char *state, size_t size);

/* The two calls (yarn_run + parse). */
int yarn_nodes_get(const char *cmd, const char *conf_dir, struct yarn_nodes *n,
                   struct err *e);
int yarn_app_state(const char *cmd, const char *conf_dir, const char *app,
                   char *state, size_t size, struct err *e);
int yarn_app_kill(const char *cmd, const char *conf_dir, const char *app,
                  struct err *e);

#endif
