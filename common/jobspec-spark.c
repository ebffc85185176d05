/* jobspec-spark.c: the job spec's `spark` object (docs/spark.md).
 *
 * Every value here ends up as one word of spark-submit's argv (never a
 * shell), so the rules are about what Spark accepts and what the launcher
 * owns: conf names follow a safe-name rule and may not set what a field
 * (or the launcher) sets; paths are relative to the work directory. */
#include "common/err.h"
#include "common/jobspec.h"
#include "common/json.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPARK_MAX_CONF   256
#define SPARK_MAX_KEY    128
#define SPARK_MAX_VALUE  4096
#define SPARK_MAX_FILES  64
#define SPARK_MAX_MASTER 512

/* Conf names the launcher or a field of the object sets: the message says
 * which. */
static const struct {
	const char *key, *use;
} owned[] = {
    {"spark.master", "spark.master"},
    {"spark.submit.deployMode", "spark.deploy_mode"},
    {"spark.executor.instances", "spark.executors"},
    {"spark.executor.cores", "spark.executor_cores"},
    {"spark.cores.max", "spark.executors and spark.executor_cores"},
    {"spark.executor.memory", "spark.executor_memory"},
    {"spark.driver.memory", "spark.driver_memory"},
    {"spark.submit.pyFiles", "spark.py_files"},
    {"spark.archives", "spark.archives"},
    {"spark.eventLog.enabled", "nothing: the launcher finds the "
                               "application by its event log"},
    {"spark.eventLog.dir", "nothing: the launcher finds the application "
                           "by its event log"},
    {"spark.eventLog.compress", "nothing: the launcher finds the "
                                "application by its event log"},
    {"spark.app.name", "nothing: the launcher names the application "
                       "tether-<job>-<attempt> (it stops only an "
                       "application of that name)"},
};

/* spark.<letters, digits, . _ -> with no empty part: what Spark's own
 * names look like, and never an option or a second word of the argv. */
static bool conf_name_ok(const char *k)
{
	size_t n = strlen(k);

	if (n <= 6 || n > SPARK_MAX_KEY || strncmp(k, "spark.", 6) != 0 ||
	    k[n - 1] == '.')
		return false;
	for (const char *p = k; *p; p++) {
		if (!isascii((unsigned char)*p) ||
		    !(isalnum((unsigned char)*p) || *p == '.' || *p == '_' ||
		      *p == '-'))
			return false;
		if (*p == '.' && p[1] == '.')
			return false;
	}
	return true;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* host[:port] words of a master URL: letters, digits, . - : [ ] , */
static bool host_list_ok(const char *h)
{
	if (*h == '\0')
		return false;
	for (; *h; h++)
		if (!isascii((unsigned char)*h) ||
		    !(isalnum((unsigned char)*h) || strchr(".-:[],_", *h)))
			return false;
	return true;
}

/* yarn, local, local[N], local[*], local[N,F], spark://host:port[,...],
 * k8s://https://... is left out (not driven by this launcher). */
bool jobspec_spark_master_ok(const char *m)
{
	size_t n = strlen(m);

	if (strcmp(m, "yarn") == 0 || strcmp(m, "local") == 0)
		return true;
	if (strncmp(m, "local[", 6) == 0 && n > 7 && m[n - 1] == ']') {
		for (size_t i = 6; i < n - 1; i++)
			if (!isdigit((unsigned char)m[i]) && m[i] != '*' &&
			    m[i] != ',')
				return false;
		return true;
	}
	return strncmp(m, "spark://", 8) == 0 && host_list_ok(m + 8);
}

/* 512m, 2g, 1024 (MiB for Spark when no unit): digits and one unit. */
static bool memory_ok(const char *v)
{
	size_t d = strspn(v, "0123456789");

	return d > 0 && d <= 9 &&
	       (v[d] == '\0' || (strchr("kKmMgGtT", v[d]) && v[d + 1] == '\0'));
}

static int parse_conf(json_t *sp, struct jobspec *s, struct err *e)
{
	json_t *obj = json_object_get(sp, "conf"), *v;
	const char *k;
	size_t i = 0;

	if (obj == NULL || json_is_null(obj))
		return 0;
	if (!json_is_object(obj) || json_object_size(obj) > SPARK_MAX_CONF)
		return err_set(e, TERR_INVAL,
		               "spark.conf: expected an object of at most %d "
		               "\"spark.name\": \"value\" entries",
		               SPARK_MAX_CONF);
	s->spark.conf =
	    xcalloc(json_object_size(obj) + 1, sizeof(*s->spark.conf));
	json_object_foreach(obj, k, v)
	{
		char shown[160];
		if (!conf_name_ok(k))
			return err_set(
			    e, TERR_INVAL,
			    "spark.conf: '%s' is not a Spark setting "
			    "name (spark. then letters, digits, '.', "
			    "'_' and '-', at most %d bytes)",
			    str_escape(k, shown, sizeof(shown)), SPARK_MAX_KEY);
		for (size_t o = 0; o < sizeof(owned) / sizeof(owned[0]); o++)
			if (strcmp(k, owned[o].key) == 0)
				return err_set(
				    e, TERR_INVAL,
				    "spark.conf.%s: set by the launcher; "
				    "use %s",
				    k, owned[o].use);
		if (!json_is_string(v) ||
		    json_string_length(v) > SPARK_MAX_VALUE ||
		    strlen(json_string_value(v)) != json_string_length(v) ||
		    !printable(json_string_value(v)))
			return err_set(e, TERR_INVAL,
			               "spark.conf.%s: expected a string of at "
			               "most %d printable bytes",
			               k, SPARK_MAX_VALUE);
		s->spark.conf[i].key = k;
		s->spark.conf[i].value = json_string_value(v);
		i++;
	}
	s->spark.nconf = i;
	return 0;
}

/* A list of relative paths in the work directory; archives may name the
 * directory they unpack to (path#alias). */
static int parse_files(json_t *sp, const char *key, bool alias,
                       const char ***out, struct err *e)
{
	json_t *a = json_object_get(sp, key), *v;
	size_t i;

	if (a == NULL || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > SPARK_MAX_FILES)
		return err_set(e, TERR_INVAL,
		               "spark.%s: expected a list of at most %d paths",
		               key, SPARK_MAX_FILES);
	*out = xcalloc(json_array_size(a) + 1, sizeof(**out));
	json_array_foreach(a, i, v)
	{
		const char *p = json_string_value(v);
		const char *hash = p != NULL && alias ? strchr(p, '#') : NULL;
		char path[4096];
		/* ',' separates Spark's list, '#' starts an alias */
		bool ok = p != NULL && strlen(p) == json_string_length(v) &&
		          strlen(p) < sizeof(path) && strchr(p, ',') == NULL &&
		          (alias || strchr(p, '#') == NULL);

		if (ok) {
			snprintf(path, sizeof(path), "%.*s",
			         hash ? (int)(hash - p) : (int)strlen(p), p);
			ok =
			    path_is_safe_relative(path) &&
			    (hash == NULL ||
			     (hash[1] != '\0' &&
			      strspn(hash + 1,
			             "abcdefghijklmnopqrstuvwxyz"
			             "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			             "0123456789._-") == strlen(hash + 1) &&
			      strcmp(hash + 1, ".") && strcmp(hash + 1, "..")));
		}
		if (!ok)
			return err_set(
			    e, TERR_INVAL,
			    "spark.%s[%zu]: expected a relative path "
			    "in the job's directory (no '..', no ',' or '#'%s)",
			    key, i,
			    alias ? ", optionally #name of letters, "
			            "digits, '.', '_' and '-'"
			          : "");
		(*out)[i] = p;
	}
	return 0;
}

int jobspec_parse_spark(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const keys[] = {"master",         "deploy_mode",
	                                   "conf",           "executors",
	                                   "executor_cores", "executor_memory",
	                                   "driver_memory",  "py_files",
	                                   "archives",       NULL};
	json_t *sp = json_object_get(root, "spark");
	int r;

	if (sp == NULL || json_is_null(sp))
		return 0;
	if ((r = json_check_keys(sp, "spark", keys, e)) < 0 ||
	    (r = json_get_str(sp, "spark", "master", false, SPARK_MAX_MASTER,
	                      &s->spark.master, e)) < 0 ||
	    (r = json_get_str(sp, "spark", "deploy_mode", false, 16,
	                      &s->spark.deploy_mode, e)) < 0 ||
	    (r = json_get_int(sp, "spark", "executors", false, 1, 10000,
	                      &s->spark.executors, e)) < 0 ||
	    (r = json_get_int(sp, "spark", "executor_cores", false, 1, 1024,
	                      &s->spark.executor_cores, e)) < 0 ||
	    (r = json_get_str(sp, "spark", "executor_memory", false, 16,
	                      &s->spark.executor_memory, e)) < 0 ||
	    (r = json_get_str(sp, "spark", "driver_memory", false, 16,
	                      &s->spark.driver_memory, e)) < 0 ||
	    (r = parse_conf(sp, s, e)) < 0 ||
	    (r = parse_files(sp, "py_files", false, &s->spark.py_files, e)) <
	        0 ||
	    (r = parse_files(sp, "archives", true, &s->spark.archives, e)) < 0)
		return r;
	if (s->spark.master != NULL &&
	    !jobspec_spark_master_ok(s->spark.master))
		return err_set(
		    e, TERR_INVAL,
		    "spark.master: expected yarn, local, local[N] or "
		    "spark://host:port");
	if (s->spark.deploy_mode != NULL &&
	    strcmp(s->spark.deploy_mode, "client") != 0 &&
	    strcmp(s->spark.deploy_mode, "cluster") != 0)
		return err_set(e, TERR_INVAL,
		               "spark.deploy_mode: expected client or cluster");
	if (s->spark.executor_memory != NULL &&
	    !memory_ok(s->spark.executor_memory))
		return err_set(e, TERR_INVAL,
		               "spark.executor_memory: expected a size like "
		               "512m or 2g");
	if (s->spark.driver_memory != NULL &&
	    !memory_ok(s->spark.driver_memory))
		return err_set(e, TERR_INVAL,
		               "spark.driver_memory: expected a size like 512m "
		               "or 2g");
	return 0;
}
