/* yarn.c: the `yarn` command line (yarn.h, docs/spark.md "YARN"). */
#include "common/yarn.h"
#include "common/buf.h"
#include "common/cmdrun.h"
#include "common/err.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define YARN_OUT_MAX (4 << 20)
#define YARN_ERR_MAX (64 << 10)

/* The last non-empty line of s (a copy into out). */
static void last_line(const char *s, char *out, size_t size)
{
	const char *end = s + strlen(s), *start;

	while (end > s && (end[-1] == '\n' || end[-1] == '\r' ||
	                   end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (start = end; start > s && start[-1] != '\n'; start--)
		;
	snprintf(out, size, "%.*s", (int)(end - start), start);
}

int yarn_run(const char *cmd, const char *conf_dir, const char *const *args,
             struct buf *out, int64_t timeout_ms, struct err *e)
{
	const char *argv[32];
	char *hc = NULL, *yc = NULL, why[256];
	struct buf eb;
	size_t n = 0;
	int status = 0, rc;

	if (cmd == NULL || *cmd == '\0')
		return err_set(e, TERR_INVAL, "yarn_command: empty");
	if (conf_dir != NULL && *conf_dir != '\0') {
		hc = xasprintf("HADOOP_CONF_DIR=%s", conf_dir);
		yc = xasprintf("YARN_CONF_DIR=%s", conf_dir);
		argv[n++] = "env";
		argv[n++] = hc;
		argv[n++] = yc;
	}
	argv[n++] = cmd;
	for (size_t i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	buf_init(&eb, YARN_ERR_MAX);
	rc = cmd_capture(argv, out, &eb, timeout_ms, &status, e);
	if (rc == 0 && status != 0) {
		last_line(eb.data ? eb.data : "", why, sizeof(why));
		if (why[0] == '\0' && out->data != NULL)
			last_line(out->data, why, sizeof(why));
		rc = err_set(e, TERR_IO, "%s %s: exit %d%s%s", cmd, args[0],
		             status, why[0] ? ": " : "", why);
	} else if (rc < 0) {
		err_wrap(e, "%s %s", cmd, args[0]);
	}
	buf_free(&eb);
	free(hc);
	free(yc);
	return rc;
}

/* "<memory:4096, vCores:4>" (more resources may follow) after key. */
static bool resource(const char *line, const char *key, int64_t *mem,
                     int64_t *cores)
{
	const char *p = strstr(line, key), *m, *c;

	if (p == NULL || (m = strstr(p, "memory:")) == NULL ||
	    (c = strstr(p, "vCores:")) == NULL)
		return false;
	*mem = strtoll(m + 7, NULL, 10);
	*cores = strtoll(c + 7, NULL, 10);
	if (*mem < 0)
		*mem = 0;
	if (*cores < 0)
		*cores = 0;
	return true;
}

int yarn_nodes_parse(const char *text, struct yarn_nodes *n)
{
	const char *p = text;
	int64_t mem, cores;

	memset(n, 0, sizeof(*n));
	if (text == NULL || strstr(text, "Total Nodes:") == NULL)
		return -1;
	while (*p != '\0') {
		size_t len = strcspn(p, "\n");
		char line[512];

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		if (resource(line, "Configured Resources", &mem, &cores)) {
			n->nodes++;
			n->vcores += cores;
			n->memory_mb += mem;
			if (cores > n->max_node_vcores)
				n->max_node_vcores = cores;
			if (mem > n->max_node_memory_mb)
				n->max_node_memory_mb = mem;
		} else if (resource(line, "Allocated Resources", &mem,
		                    &cores)) {
			n->vcores_used += cores;
			n->memory_used_mb += mem;
		}
		p += len + (p[len] == '\n');
	}
	return 0;
}

bool yarn_app_state_parse(const char *text, char *state, size_t size)
{
	const char *p = text;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, "\n");
		const char *q = p + strspn(p, " \t");

		/* "\tState : KILLED" (not "Final-State",
		 * "YarnApplicationState") */
		if (strncmp(q, "State", 5) == 0) {
			q += 5 + strspn(q + 5, " \t");
			if (*q == ':') {
				q++;
				q += strspn(q, " \t");
				snprintf(state, size, "%.*s",
				         (int)strcspn(q, " \t\r\n"), q);
				return state[0] != '\0';
			}
		}
		p += len + (p[len] == '\n');
	}
	return false;
}

int yarn_nodes_get(const char *cmd, const char *conf_dir, struct yarn_nodes *n,
                   struct err *e)
{
	const char *args[] = {"node",    "-list",        "-states",
	                      "RUNNING", "-showDetails", NULL};
	struct buf b;
	int rc;

	buf_init(&b, YARN_OUT_MAX);
	rc = yarn_run(cmd, conf_dir, args, &b, YARN_TIMEOUT_MS, e);
	if (rc == 0 && yarn_nodes_parse(b.data, n) < 0)
		rc = err_set(e, TERR_PROTO, "%s node -list: not a node list",
		             cmd);
	buf_free(&b);
	return rc;
}

int yarn_app_state(const char *cmd, const char *conf_dir, const char *app,
                   char *state, size_t size, struct err *e)
{
	const char *args[] = {"application", "-status", app, NULL};
	struct buf b;
	int rc;

	buf_init(&b, YARN_OUT_MAX);
	rc = yarn_run(cmd, conf_dir, args, &b, YARN_TIMEOUT_MS, e);
	if (rc == 0 && !yarn_app_state_parse(b.data, state, size))
		rc = err_set(e, TERR_PROTO,
		             "%s application -status %s: no State", cmd, app);
	buf_free(&b);
	return rc;
}

int yarn_app_kill(const char *cmd, const char *conf_dir, const char *app,
                  struct err *e)
{
	const char *args[] = {"application", "-kill", app, NULL};
	struct buf b;
	int rc;

	buf_init(&b, YARN_OUT_MAX);
	rc = yarn_run(cmd, conf_dir, args, &b, YARN_TIMEOUT_MS, e);
	buf_free(&b);
	return rc;
}
