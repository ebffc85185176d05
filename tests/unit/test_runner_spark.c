/* Unit tests of the spark launcher's pure parts: the spec's `spark` object
 * (common/jobspec-spark.c: every refusal names its field), the
 * spark-submit argv (runner/spark/spark-submit.c: one word per value,
 * never a shell), the master's UI address and application ids from event
 * log names, and the fit check against a cluster (spark-master.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/spark/spark.h"
#include "common/err.h"
#include "common/jobspec.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct jobspec *parse_ok(const char *spark)
{
	char *text = xasprintf("{\"name\": \"s\", \"command\": [\"app.py\", "
	                       "\"--x\", \"a b;$(id)\"], \"launcher\": "
	                       "\"spark\", \"spark\": %s}",
	                       spark);
	struct jobspec *s = NULL;
	struct err e = {0};

	if (jobspec_parse(text, strlen(text), &s, &e) != 0)
		fail_msg("%s: %s", spark, e.msg);
	free(text);
	return s;
}

/* The spec is refused and the message starts with field. */
static void refused(const char *spark, const char *field)
{
	char *text = xasprintf("{\"name\": \"s\", \"command\": [\"a.py\"], "
	                       "\"launcher\": \"spark\", \"spark\": %s}",
	                       spark);
	struct jobspec *s = NULL;
	struct err e = {0};

	if (jobspec_parse(text, strlen(text), &s, &e) == 0)
		fail_msg("accepted: %s", spark);
	if (strncmp(e.msg, field, strlen(field)) != 0)
		fail_msg("%s: '%s' does not start with '%s'", spark, e.msg,
		         field);
	free(text);
}

static void test_spec_accepts(void **state)
{
	struct jobspec *s;

	(void)state;
	s = parse_ok("{\"master\": \"spark://h-1.example:7077\", "
	             "\"deploy_mode\": \"client\", \"executors\": 2, "
	             "\"executor_cores\": 1, \"executor_memory\": \"512m\", "
	             "\"driver_memory\": \"1g\", \"conf\": "
	             "{\"spark.sql.shuffle.partitions\": \"4\"}, "
	             "\"py_files\": [\"lib/a.py\"], "
	             "\"archives\": [\"env.tar.gz#environment\"]}");
	assert_int_equal(s->launcher, LAUNCHER_SPARK);
	assert_string_equal(s->spark.master, "spark://h-1.example:7077");
	assert_int_equal(s->spark.executors, 2);
	assert_int_equal(s->spark.nconf, 1);
	assert_string_equal(s->spark.conf[0].key,
	                    "spark.sql.shuffle.partitions");
	assert_string_equal(s->spark.archives[0], "env.tar.gz#environment");
	jobspec_free(s);
	for (const char *const *m =
	         (const char *const[]){"\"yarn\"", "\"local\"", "\"local[2]\"",
	                               "\"local[*]\"", "\"spark://a:1,b:2\"",
	                               NULL};
	     *m; m++) {
		char *o = xasprintf("{\"master\": %s}", *m);
		jobspec_free(parse_ok(o));
		free(o);
	}
}

static void test_spec_refusals_name_the_field(void **state)
{
	(void)state;
	refused("[]", "spark:");
	refused("{\"nodes\": 2}", "spark.nodes");
	refused("{\"master\": \"mesos://x:5050\"}", "spark.master");
	refused("{\"master\": \"spark://h:1 --conf x\"}", "spark.master");
	refused("{\"master\": \"local[2\"}", "spark.master");
	refused("{\"deploy_mode\": \"both\"}", "spark.deploy_mode");
	refused("{\"executors\": 0}", "spark.executors");
	refused("{\"executor_cores\": \"2\"}", "spark.executor_cores");
	refused("{\"executor_memory\": \"lots\"}", "spark.executor_memory");
	refused("{\"executor_memory\": \"-1g\"}", "spark.executor_memory");
	refused("{\"driver_memory\": \"1gb\"}", "spark.driver_memory");
	refused("{\"conf\": {\"--verbose\": \"x\"}}", "spark.conf");
	refused("{\"conf\": {\"spark.a=b\": \"x\"}}", "spark.conf");
	refused("{\"conf\": {\"hadoop.x\": \"1\"}}", "spark.conf");
	/* the runner proves an application the job's by this name */
	refused("{\"conf\": {\"spark.app.name\": \"x\"}}",
	        "spark.conf.spark.app.name");
	refused("{\"conf\": {\"spark..x\": \"1\"}}", "spark.conf");
	refused("{\"conf\": {\"spark.x\": 1}}", "spark.conf.spark.x");
	refused("{\"conf\": {\"spark.x\": \"a\\nb\"}}", "spark.conf.spark.x");
	refused("{\"conf\": {\"spark.master\": \"local\"}}",
	        "spark.conf.spark.master");
	refused("{\"conf\": {\"spark.executor.cores\": \"4\"}}",
	        "spark.conf.spark.executor.cores");
	refused("{\"conf\": {\"spark.eventLog.dir\": \"/x\"}}",
	        "spark.conf.spark.eventLog.dir");
	refused("{\"py_files\": [\"../x.py\"]}", "spark.py_files[0]");
	refused("{\"py_files\": [\"/etc/passwd\"]}", "spark.py_files[0]");
	refused("{\"py_files\": [\"a.py,b.py\"]}", "spark.py_files[0]");
	refused("{\"py_files\": [\"a.py#x\"]}", "spark.py_files[0]");
	refused("{\"archives\": [\"ok.zip\", \"e.tgz#../x\"]}",
	        "spark.archives[1]");
	refused("{\"archives\": [\"e.tgz#\"]}", "spark.archives[0]");
}

/* argv as one string, words between | */
static char *joined(char **argv)
{
	size_t n = 1;
	char *out;

	for (size_t i = 0; argv[i]; i++)
		n += strlen(argv[i]) + 1;
	out = xcalloc(1, n);
	for (size_t i = 0; argv[i]; i++) {
		strcat(out, argv[i]);
		strcat(out, "|");
	}
	return out;
}

static void free_argv(char **v)
{
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static void test_submit_argv(void **state)
{
	struct jobspec *s = parse_ok(
	    "{\"executors\": 3, \"executor_cores\": 2, "
	    "\"executor_memory\": \"600m\", \"driver_memory\": \"1g\", "
	    "\"py_files\": [\"a.py\", \"lib/b.zip\"], "
	    "\"archives\": [\"env.tgz#environment\"], "
	    "\"conf\": {\"spark.x.y\": \"v w=z\"}}");
	struct spark_submit sub = {"/s/bin/spark-submit",
	                           "spark://m:7077",
	                           "tether-7-1",
	                           "node1",
	                           "/tether/outputs/spark-events",
	                           NULL};
	char **argv = spark_submit_argv(s, &sub);
	char *got = joined(argv);

	(void)state;
	assert_string_equal(
	    got, "/s/bin/spark-submit|--master|spark://m:7077|--deploy-mode|"
	         "client|--name|tether-7-1|--executor-cores|2|"
	         "--total-executor-cores|6|--executor-memory|600m|"
	         "--driver-memory|1g|--py-files|/tether/work/a.py,"
	         "/tether/work/lib/b.zip|--archives|"
	         "/tether/work/env.tgz#environment|--conf|"
	         "spark.driver.host=node1|--conf|spark.eventLog.enabled=true|"
	         "--conf|spark.eventLog.compress=true|--conf|"
	         "spark.eventLog.dir=file:///tether/outputs/spark-events|"
	         "--conf|spark.x.y=v w=z|app.py|--x|a b;$(id)|");
	free(got);
	free_argv(argv);
	/* YARN counts executors; local has none */
	sub.master = "yarn";
	argv = spark_submit_argv(s, &sub);
	got = joined(argv);
	assert_non_null(strstr(got, "|--num-executors|3|"));
	assert_null(strstr(got, "total-executor-cores"));
	free(got);
	free_argv(argv);
	sub.master = "local[2]";
	argv = spark_submit_argv(s, &sub);
	got = joined(argv);
	assert_null(strstr(got, "executor"));
	free(got);
	free_argv(argv);
	jobspec_free(s);
}

static void test_names(void **state)
{
	char id[SPARK_APP_ID_MAX], *ui;

	(void)state;
	assert_true(spark_app_id_from_file("app-20261207004327-0000", id));
	assert_string_equal(id, "app-20261207004327-0000");
	assert_true(spark_app_id_from_file(
	    "app-20261207004327-0001.lz4.inprogress", id));
	assert_string_equal(id, "app-20261207004327-0001");
	assert_true(spark_app_id_from_file("local-1796604159786", id));
	assert_true(spark_app_id_from_file("application_17_0001", id));
	assert_false(spark_app_id_from_file("notes.txt", id));
	assert_false(spark_app_id_from_file("app-x&terminate=1", id));
	assert_false(spark_app_id_from_file(".inprogress", id));
	ui = spark_master_ui("spark://m.example:7077,n:7077", NULL);
	assert_string_equal(ui, "http://m.example:8080");
	free(ui);
	ui = spark_master_ui("spark://m:7077", "http://m:18080");
	assert_string_equal(ui, "http://m:18080");
	free(ui);
	assert_null(spark_master_ui("local[2]", NULL));
	assert_null(spark_master_ui("yarn", NULL));
	assert_int_equal(spark_size_mb("600m"), 600);
	assert_int_equal(spark_size_mb("2g"), 2048);
	assert_int_equal(spark_size_mb("1024"), 1024);
	assert_int_equal(spark_size_mb(NULL), -1);
}

static void test_fits(void **state)
{
	struct spark_cluster c = {.workers = 2,
	                          .cores = 2,
	                          .cores_free = 2,
	                          .max_worker_cores = 1,
	                          .memory_mb = 2048,
	                          .max_worker_memory_mb = 1024};
	struct jobspec *s;
	struct err e = {0};

	(void)state;
	s = parse_ok("{\"executors\": 2, \"executor_cores\": 1}");
	assert_int_equal(spark_check_fits(s, &c, "spark://m:1", &e), 0);
	jobspec_free(s);
	s = parse_ok("{\"executors\": 3, \"executor_cores\": 1}");
	assert_int_equal(spark_check_fits(s, &c, "spark://m:1", &e),
	                 TERR_UNSUPP);
	assert_non_null(
	    strstr(e.msg, "spark.executors x spark.executor_cores"));
	jobspec_free(s);
	s = parse_ok("{\"executor_cores\": 2}");
	assert_int_equal(spark_check_fits(s, &c, "spark://m:1", &e),
	                 TERR_UNSUPP);
	assert_non_null(strstr(e.msg, "spark.executor_cores: 2 cores"));
	jobspec_free(s);
	s = parse_ok("{\"executor_memory\": \"2g\"}");
	assert_int_equal(spark_check_fits(s, &c, "spark://m:1", &e),
	                 TERR_UNSUPP);
	assert_non_null(strstr(e.msg, "spark.executor_memory"));
	jobspec_free(s);
	c.workers = 0;
	s = parse_ok("{}");
	assert_int_equal(spark_check_fits(s, &c, "spark://m:1", &e),
	                 TERR_UNSUPP);
	jobspec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_accepts),
	    cmocka_unit_test(test_spec_refusals_name_the_field),
	    cmocka_unit_test(test_submit_argv),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_fits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
