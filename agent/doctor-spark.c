/* doctor-spark.c: the spark launcher's pieces on this node (issue 27):
 * Java, spark-submit (spark_home or PATH) and, for a standalone master,
 * its reachability (its JSON status, the same page the agent reports the
 * cluster from).  Wanted (a failure, not a warning) when the node is set
 * up for Spark: spark_master set or default_launcher spark.  With
 * spark_master yarn the check is the yarn command (yarn_command) listing
 * the RUNNING node managers, as the agent's capacity poller does. */
#include "agent/agent.h"
#include "agent/doctor.h"
#include "common/err.h"
#include "common/util.h"
#include "common/yarn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of s, in place. */
static const char *line1(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	return s;
}

/* spark-submit's path into buf: spark_home's, else PATH's. */
static bool find_submit(struct doctor *d, char *buf, size_t len)
{
	if (d->conf.spark_home != NULL) {
		snprintf(buf, len, "%s/bin/spark-submit", d->conf.spark_home);
		return access(buf, X_OK) == 0;
	}
	return doctor_which("spark-submit", buf, len);
}

static void check_yarn(struct doctor *d, enum doctor_status bad)
{
	const char *cmd = d->conf.yarn_command ? d->conf.yarn_command : "yarn";
	const char *conf = agent_conf_yarn_conf(&d->conf);
	struct yarn_nodes n;
	struct err e = {0};

	if (yarn_nodes_get(cmd, conf, &n, &e) < 0)
		doctor_add(d, "spark-master", bad,
		           "install Hadoop's client on this node (its bin/yarn "
		           "as yarn_command, HADOOP_CONF_DIR or yarn_conf_dir "
		           "naming the cluster; docs/spark.md)",
		           "yarn: %s", e.msg);
	else if (n.nodes == 0)
		doctor_add(d, "spark-master", bad,
		           "start the cluster's NodeManagers",
		           "yarn: %s node -list: no RUNNING node manager", cmd);
	else
		doctor_add(d, "spark-master", DOC_OK, NULL,
		           "yarn (%s%s%s): %lld running node managers, %lld "
		           "vcores (%lld used), %lld MiB",
		           cmd, conf ? ", HADOOP_CONF_DIR=" : "",
		           conf ? conf : "", (long long)n.nodes,
		           (long long)n.vcores, (long long)n.vcores_used,
		           (long long)n.memory_mb);
}

static void check_master(struct doctor *d, enum doctor_status bad)
{
	char *ui = spark_poll_ui(&d->conf), *url;
	struct err e = {0};
	json_t *st = NULL, *sum;

	if (d->conf.spark_master != NULL &&
	    strcmp(d->conf.spark_master, "yarn") == 0) {
		free(ui);
		check_yarn(d, bad);
		return;
	}

	if (d->conf.spark_master == NULL ||
	    strncmp(d->conf.spark_master, "spark://", 8) != 0) {
		doctor_add(d, "spark-master", DOC_INFO, NULL,
		           "master %s: nothing to reach from here",
		           d->conf.spark_master ? d->conf.spark_master
		                                : "not set (jobs name theirs)");
		free(ui);
		return;
	}
	url = xasprintf("%s/json/", ui);
	if (spark_status_get(url, &st, &e) < 0) {
		doctor_add(
		    d, "spark-master", bad,
		    "start the master, or set spark_master_ui to its web "
		    "UI (docs/spark.md)",
		    "%s: %s", d->conf.spark_master, e.msg);
	} else {
		sum = spark_status_summary(st, d->conf.spark_master);
		doctor_add(d, "spark-master", DOC_OK, NULL,
		           "%s: %lld live workers, %lld cores (%lld idle)",
		           d->conf.spark_master,
		           (long long)json_integer_value(
		               json_object_get(sum, "workers")),
		           (long long)json_integer_value(
		               json_object_get(sum, "cores")),
		           (long long)json_integer_value(
		               json_object_get(sum, "idle_cores")));
		json_decref(sum);
	}
	json_decref(st);
	free(url);
	free(ui);
}

void doctor_check_spark(struct doctor *d)
{
	bool wanted = d->conf.spark_master != NULL ||
	              (d->conf.default_launcher &&
	               strcmp(d->conf.default_launcher, "spark") == 0);
	enum doctor_status bad = wanted ? DOC_FAIL : DOC_INFO;
	char java[512], submit[512], out[1024] = "";
	const char *argv[] = {java, "-version", NULL};

	if (!doctor_which("java", java, sizeof(java))) {
		doctor_add(
		    d, "spark", bad,
		    wanted ? "apt-get install openjdk-17-jre-headless" : NULL,
		    "java not on PATH: the spark launcher is unavailable");
		return;
	}
	if (doctor_run(argv, 20, out, sizeof(out)) != 0) {
		doctor_add(d, "spark", bad, "reinstall the JDK",
		           "java -version failed: %s", line1(out));
		return;
	}
	if (!find_submit(d, submit, sizeof(submit))) {
		doctor_add(d, "spark", bad,
		           wanted ? "install Spark (e.g. pip install pyspark "
		                    "into a venv) and set spark_home"
		                  : NULL,
		           "%s: the spark launcher is unavailable",
		           d->conf.spark_home
		               ? "spark_home has no bin/spark-submit"
		               : "spark-submit not on PATH");
		return;
	}
	doctor_add(d, "spark", DOC_OK, NULL, "%s; %s", submit, line1(out));
	if (wanted)
		check_master(d, bad);
}
