/* spark-submit.c: the spark-submit argv and the names the spark launcher
 * works out from strings (docs/spark.md, "Submission").  Pure functions:
 * no I/O, so the unit tests can check every word. */
#include "runner/spark/spark.h"
#include "common/jobspec.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGV_MAX 1200 /* options (under 40 + conf) plus command */

struct argvb {
	char **v;
	size_t n;
};

static void add(struct argvb *b, char *word)
{
	if (b->n + 1 < ARGV_MAX)
		b->v[b->n++] = word;
	else
		free(word);
}

static void add2(struct argvb *b, const char *opt, const char *value)
{
	add(b, xstrdup(opt));
	add(b, xstrdup(value));
}

/* --conf name=value */
static void add_conf(struct argvb *b, const char *name, const char *value)
{
	add(b, xstrdup("--conf"));
	add(b, xasprintf("%s=%s", name, value));
}

/* Comma-joined /tether/work/<path> list (paths are the spec's, checked
 * relative and comma-free by the parser). */
static char *work_paths(const char **paths)
{
	size_t len = 1;
	char *out, *p;

	for (size_t i = 0; paths[i]; i++)
		len += strlen("/tether/work/") + strlen(paths[i]) + 1;
	out = p = xcalloc(1, len);
	for (size_t i = 0; paths[i]; i++)
		p += snprintf(p, len - (size_t)(p - out), "%s/tether/work/%s",
		              i ? "," : "", paths[i]);
	return out;
}

bool spark_master_local(const char *m)
{
	return m != NULL && strncmp(m, "local", 5) == 0;
}

static bool master_yarn(const char *m)
{
	return m != NULL && strcmp(m, "yarn") == 0;
}

/* Executors, cores and memory as the cluster manager takes them:
 * standalone counts total cores (spark.cores.max), YARN executors. */
static void add_resources(struct argvb *b, const struct jobspec *sp,
                          const char *master)
{
	int64_t cores = sp->spark.executor_cores;
	char num[32];

	if (spark_master_local(master))
		return; /* one JVM: the executors' fields do not apply */
	if (cores > 0 || sp->spark.executors > 0) {
		snprintf(num, sizeof(num), "%lld",
		         (long long)(cores > 0 ? cores : 1));
		add2(b, "--executor-cores", num);
	}
	if (sp->spark.executors > 0 && master_yarn(master)) {
		snprintf(num, sizeof(num), "%lld",
		         (long long)sp->spark.executors);
		add2(b, "--num-executors", num);
	} else if (sp->spark.executors > 0) {
		snprintf(
		    num, sizeof(num), "%lld",
		    (long long)(sp->spark.executors * (cores > 0 ? cores : 1)));
		add2(b, "--total-executor-cores", num);
	}
	if (sp->spark.executor_memory)
		add2(b, "--executor-memory", sp->spark.executor_memory);
}

char **spark_submit_argv(const struct jobspec *sp, const struct spark_submit *s)
{
	struct argvb b = {xcalloc(ARGV_MAX, sizeof(char *)), 0};
	char *list;

	add(&b, xstrdup(s->submit));
	add2(&b, "--master", s->master);
	add2(&b, "--deploy-mode", "client");
	add2(&b, "--name", s->name);
	add_resources(&b, sp, s->master);
	if (sp->spark.driver_memory)
		add2(&b, "--driver-memory", sp->spark.driver_memory);
	if (sp->spark.py_files && sp->spark.py_files[0]) {
		add2(&b, "--py-files", list = work_paths(sp->spark.py_files));
		free(list);
	}
	if ((sp->spark.archives && sp->spark.archives[0]) || s->archive_env) {
		list = sp->spark.archives ? work_paths(sp->spark.archives)
		                          : xstrdup("");
		if (s->archive_env) {
			char *more = xasprintf("%s%s%s", list, *list ? "," : "",
			                       s->archive_env);
			free(list);
			list = more;
		}
		add2(&b, "--archives", list);
		free(list);
	}
	if (s->driver_host)
		add_conf(&b, "spark.driver.host", s->driver_host);
	add_conf(&b, "spark.eventLog.enabled", "true");
	add_conf(&b, "spark.eventLog.compress", "true");
	list = xasprintf("file://%s", s->events_dir);
	add_conf(&b, "spark.eventLog.dir", list);
	free(list);
	for (size_t i = 0; i < sp->spark.nconf; i++)
		add_conf(&b, sp->spark.conf[i].key, sp->spark.conf[i].value);
	for (size_t i = 0; i < sp->argc; i++)
		add(&b, xstrdup(sp->argv[i]));
	b.v[b.n] = NULL;
	return b.v;
}

char *spark_master_ui(const char *master, const char *ui)
{
	const char *h;
	size_t n;

	if (ui != NULL && *ui != '\0')
		return xstrdup(ui);
	if (master == NULL || strncmp(master, "spark://", 8) != 0)
		return NULL;
	h = master + 8;
	n = strcspn(h, ":,/");
	return xasprintf("http://%.*s:8080", (int)n, h);
}

int64_t spark_size_mb(const char *v)
{
	char *end;
	long long n;

	if (v == NULL || !isdigit((unsigned char)*v))
		return -1;
	n = strtoll(v, &end, 10);
	if (n < 0 || n > 1000000000LL)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0':
	case 'm':
		return n;
	case 'k':
		return (n + 1023) / 1024;
	case 'g':
		return n * 1024;
	case 't':
		return n * 1024 * 1024;
	}
	return -1;
}

bool spark_app_id_from_file(const char *name, char out[SPARK_APP_ID_MAX])
{
	static const char *const prefixes[] = {"app-", "local-", "application_",
	                                       NULL};
	size_t n = strcspn(name, ".");
	bool known = false;

	for (size_t i = 0; prefixes[i]; i++)
		known = known ||
		        strncmp(name, prefixes[i], strlen(prefixes[i])) == 0;
	if (!known || n >= SPARK_APP_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' &&
		    name[i] != '_')
			return false;
	memcpy(out, name, n);
	out[n] = '\0';
	return true;
}
