/* Unit tests of common/yarn.c: what `yarn node -list` and `yarn
 * application -status` print (Hadoop 3.3's CLI, as the mini YARN of the
 * black-box tests prints it), a failing yarn command, and the yarn
 * settings a runner is handed (attempt settings). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/attempt.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/yarn.h"

#include <stdlib.h>
#include <string.h>

static const char NODES[] =
    "Total Nodes:2\n"
    "         Node-Id\t     Node-State\tNode-Http-Address\t"
    "Number-of-Running-Containers\n"
    " localhost:43641\t        RUNNING\t  localhost:36253\t"
    "                           3\n"
    "Detailed Node Information :\n"
    "\tConfigured Resources : <memory:4096, vCores:4>\n"
    "\tAllocated Resources : <memory:2048, vCores:3>\n"
    "\tResource Utilization by Node : PMem:0 MB, VMem:0 MB, VCores:0.0\n"
    "\tNode-Labels : \n"
    " otherhost:43641\t        RUNNING\t  otherhost:36253\t"
    "                           0\n"
    "Detailed Node Information :\n"
    "\tConfigured Resources : <memory:8192, vCores:2, yarn.io/gpu: 1>\n"
    "\tAllocated Resources : <memory:0, vCores:0>\n";

static void test_nodes(void **state)
{
	struct yarn_nodes n;

	(void)state;
	assert_int_equal(yarn_nodes_parse(NODES, &n), 0);
	assert_int_equal(n.nodes, 2);
	assert_int_equal(n.vcores, 6);
	assert_int_equal(n.vcores_used, 3);
	assert_int_equal(n.max_node_vcores, 4);
	assert_int_equal(n.memory_mb, 12288);
	assert_int_equal(n.memory_used_mb, 2048);
	assert_int_equal(n.max_node_memory_mb, 8192);
	assert_int_equal(yarn_nodes_parse("Total Nodes:0\n", &n), 0);
	assert_int_equal(n.nodes, 0);
	/* not a node list (a banner, an error page): refused */
	assert_int_equal(yarn_nodes_parse("Usage: yarn node\n", &n), -1);
	assert_int_equal(yarn_nodes_parse(NULL, &n), -1);
}

static void test_app_state(void **state)
{
	char st[32];

	(void)state;
	assert_true(
	    yarn_app_state_parse("Application Report : \n"
	                         "\tApplication-Id : application_1_0001\n"
	                         "\tApplication-Name : tether-J1-1\n"
	                         "\tYarnApplicationState : RUNNING\n"
	                         "\tState : KILLED\n"
	                         "\tFinal-State : KILLED\n",
	                         st, sizeof(st)));
	assert_string_equal(st, "KILLED");
	assert_false(yarn_app_state_parse("\tFinal-State : SUCCEEDED\n", st,
	                                  sizeof(st)));
	assert_false(yarn_app_state_parse("State :\n", st, sizeof(st)));
}

static void test_failing_command(void **state)
{
	const char *args[] = {"node", "-list", NULL};
	struct err e = {0};
	struct buf b;

	(void)state;
	buf_init(&b, 1 << 20);
	/* `false` exits 1: an error naming the command */
	assert_int_equal(yarn_run("false", NULL, args, &b, 5000, &e), TERR_IO);
	assert_non_null(strstr(e.msg, "false node: exit 1"));
	buf_free(&b);
	assert_int_equal(
	    yarn_run("/nonexistent/yarn", "/etc", args, &b, 5000, &e), TERR_IO);
	assert_non_null(strstr(e.msg, "/nonexistent/yarn"));
	buf_free(&b);
	/* without a conf dir it is exec'd directly (cmdrun.c says so) */
	assert_int_equal(
	    yarn_run("/nonexistent/yarn", NULL, args, &b, 5000, &e), TERR_IO);
	assert_non_null(strstr(e.msg, "/nonexistent/yarn: could not run it"));
	buf_free(&b);
}

static void test_settings_round_trip(void **state)
{
	struct attempt_settings s, back;
	struct err e = {0};
	json_t *o;

	(void)state;
	attempt_settings_init(&s);
	s.spark.yarn = strdup("/opt/hadoop/bin/yarn");
	s.spark.yarn_conf = strdup("/etc/hadoop/conf");
	o = attempt_settings_json(&s);
	memset(&back, 0, sizeof(back));
	assert_int_equal(attempt_settings_parse(o, &back, &e), 0);
	assert_string_equal(back.spark.yarn, "/opt/hadoop/bin/yarn");
	assert_string_equal(back.spark.yarn_conf, "/etc/hadoop/conf");
	json_decref(o);
	attempt_settings_free(&back);
	attempt_settings_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nodes),
	    cmocka_unit_test(test_app_state),
	    cmocka_unit_test(test_failing_command),
	    cmocka_unit_test(test_settings_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
