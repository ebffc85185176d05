/* launcher-spark.c: the `spark` launcher.
 *
 * The job's command is a Spark application.  The runner runs spark-submit
 * (client mode) as an argv in the sandbox launcher, under the job user
 * with the job's limits: the driver's output is the job's log, byte for
 * byte, like any sandboxed job.  Spark writes the application's event log
 * into <outputs>/spark-events, named by the application id: a watcher
 * thread finds the ids there, records them in spark.json, and the
 * supervisor's tick puts the latest into state.json (launcher_ref).  Stop
 * and kill ask the standalone master to kill the applications before the
 * driver is signalled, so the cluster ends them as KILLED, not merely
 * disconnected.  docs/spark.md has the details. */
#include "runner/launcher.h"
#include "runner/runner.h"
#include "runner/spark/spark.h"
#include "runner/sandbox/sandbox.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"
#include "common/yarn.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct spark_job {
	void *sb;     /* the sandbox launcher's data */
	char *master; /* spark.master, else the agent's spark_master */
	char *ui;     /* the standalone master's web UI, or NULL */
	bool yarn;    /* master yarn: the yarn command (common/yarn.h) */
	const char *yarn_cmd, *yarn_conf; /* r->set's: yarn_command, its
	                                     HADOOP_CONF_DIR (or NULL) */
	char *events;    /* <outputs>/spark-events on the host */
	char *json_file; /* <attempt>/spark.json */
	char *env_dir;   /* the packed environment's directory, or NULL */
	int64_t poll_ms;
	pthread_mutex_t lock; /* apps, napps, state */
	char apps[SPARK_MAX_APPS][SPARK_APP_ID_MAX];
	size_t napps, saved; /* saved: apps already in state.json */
	char state[32];      /* the latest application's, from the master */
	bool we_stopped;
	pthread_t thread;
	bool thread_on;
	atomic_bool stop;
};

/* Call a sandbox op with its own data in r->launcher_data. */
#define SANDBOX(r, j, call)                                                    \
	do {                                                                   \
		(r)->launcher_data = (j)->sb;                                  \
		call;                                                          \
		(j)->sb = (r)->launcher_data;                                  \
		(r)->launcher_data = (j);                                      \
	} while (0)

/* Add the application ids named in the events dir (read as root: names
 * only, never through a symlink); true when one was new. */
static bool scan_events(struct spark_job *j)
{
	int fd =
	    open(j->events, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char id[SPARK_APP_ID_MAX];
	bool added = false;
	struct dirent *d;
	DIR *dir;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((d = readdir(dir)) != NULL) {
		bool seen = false;
		if (!spark_app_id_from_file(d->d_name, id))
			continue;
		pthread_mutex_lock(&j->lock);
		for (size_t i = 0; i < j->napps; i++)
			seen = seen || strcmp(j->apps[i], id) == 0;
		if (!seen && j->napps < SPARK_MAX_APPS) {
			snprintf(j->apps[j->napps++], SPARK_APP_ID_MAX, "%s",
			         id);
			added = true;
		}
		pthread_mutex_unlock(&j->lock);
	}
	closedir(dir);
	return added;
}

/* spark.json: {"master", "ui", "apps": [...], "state"} (atomic). */
static int json_save(struct spark_job *j, struct err *e)
{
	json_t *apps = json_array(), *o;
	char *text;
	int rc;

	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < j->napps; i++)
		json_array_append_new(apps, json_string(j->apps[i]));
	o = json_pack("{s:s, s:s?, s:o, s:s, s:I}", "master", j->master, "ui",
	              j->ui, "apps", apps, "state", j->state, "updated_ms",
	              (json_int_t)now_wall_ms());
	pthread_mutex_unlock(&j->lock);
	text = json_dumps(o, JSON_COMPACT);
	rc = file_write_atomic(j->json_file, text, strlen(text), 0600, e);
	free(text);
	json_decref(o);
	return rc;
}

/* The master's state of the latest application into j->state. */
static void poll_state(struct spark_job *j)
{
	char id[SPARK_APP_ID_MAX] = "", state[32];
	struct err e = {0};
	json_t *st = NULL;

	pthread_mutex_lock(&j->lock);
	if (j->napps > 0)
		snprintf(id, sizeof(id), "%s", j->apps[j->napps - 1]);
	pthread_mutex_unlock(&j->lock);
	if (j->ui == NULL || id[0] == '\0' ||
	    spark_master_status(j->ui, &st, &e) < 0)
		return;
	if (spark_status_app(st, id, state, sizeof(state))) {
		pthread_mutex_lock(&j->lock);
		snprintf(j->state, sizeof(j->state), "%s", state);
		pthread_mutex_unlock(&j->lock);
	}
	json_decref(st);
}

static void *watch_main(void *arg)
{
	struct spark_job *j = arg;
	struct err e = {0};

	while (!atomic_load(&j->stop)) {
		char before[32];
		bool changed = scan_events(j);
		snprintf(before, sizeof(before), "%s", j->state);
		poll_state(j);
		if ((changed || strcmp(before, j->state) != 0) &&
		    json_save(j, &e) < 0)
			log_warn("spark.json: %s", e.msg);
		for (int64_t t = 0; t < j->poll_ms && !atomic_load(&j->stop);
		     t += 50)
			usleep(50000);
	}
	return NULL;
}

static void watch_stop(struct spark_job *j)
{
	if (!j->thread_on)
		return;
	atomic_store(&j->stop, true);
	pthread_join(j->thread, NULL);
	j->thread_on = false;
}

/* YARN: `yarn application -kill` each application of the job (it answers
 * "already finished" for one that ended: no status call first). */
static void kill_yarn_apps(struct runner *r, struct spark_job *j)
{
	for (size_t i = 0; i < j->napps; i++) {
		struct err e = {0};

		if (yarn_app_kill(j->yarn_cmd, j->yarn_conf, j->apps[i], &e) <
		    0)
			runner_logf(r, "spark", "kill %s: %s", j->apps[i],
			            e.msg);
		else
			runner_logf(r, "spark", "application %s killed on yarn",
			            j->apps[i]);
	}
}

/* Kill every application of the job that the master still runs. */
static void kill_apps(struct runner *r, struct spark_job *j)
{
	json_t *st = NULL;
	struct err e = {0};
	char state[32];

	scan_events(j);
	j->we_stopped = true;
	if (j->yarn) {
		kill_yarn_apps(r, j);
		return;
	}
	if (j->ui == NULL || j->napps == 0)
		return;
	if (spark_master_status(j->ui, &st, &e) < 0) {
		runner_logf(r, "spark", "cannot kill on the master: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < j->napps; i++) {
		if (!spark_status_app(st, j->apps[i], state, sizeof(state)) ||
		    (strcmp(state, "RUNNING") && strcmp(state, "WAITING")))
			continue;
		if (spark_master_kill(j->ui, j->apps[i], &e) < 0)
			runner_logf(r, "spark", "kill %s: %s", j->apps[i],
			            e.msg);
		else
			runner_logf(r, "spark", "application %s killed on %s",
			            j->apps[i], j->master);
	}
	json_decref(st);
}

static void job_free(struct spark_job *j)
{
	if (j == NULL)
		return;
	watch_stop(j);
	pthread_mutex_destroy(&j->lock);
	free(j->master);
	free(j->ui);
	free(j->events);
	free(j->json_file);
	free(j->env_dir);
	free(j);
}

/* The launcher data with the master resolved (spec, else the agent). */
static int job_get(struct runner *r, struct spark_job **out, struct err *e)
{
	struct spark_job *j = r->launcher_data;
	const char *m =
	    r->spec->spark.master ? r->spec->spark.master : r->set.spark.master;
	bool agents = r->spec->spark.master == NULL ||
	              (r->set.spark.master &&
	               strcmp(r->spec->spark.master, r->set.spark.master) == 0);

	if (j != NULL) {
		*out = j;
		return 0;
	}
	if (m == NULL || !jobspec_spark_master_ok(m))
		return err_set(e, TERR_INVAL,
		               "spark.master: %s (set it in the job, or "
		               "spark_master in the agent's config)",
		               m ? "the agent's spark_master is not a master "
		                   "this launcher drives"
		                 : "not given");
	j = xcalloc(1, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	j->master = xstrdup(m);
	j->ui = spark_master_ui(m, agents ? r->set.spark.ui : NULL);
	j->yarn = strcmp(m, "yarn") == 0;
	j->yarn_cmd = r->set.spark.yarn ? r->set.spark.yarn : "yarn";
	j->yarn_conf = r->set.spark.yarn_conf;
	j->events = xasprintf("%s/%s", r->outputs_dir, SPARK_EVENTS);
	j->json_file = xasprintf("%s/%s", r->dir, SPARK_JSON);
	j->poll_ms = r->set.spark.poll_ms > 0 ? r->set.spark.poll_ms : 1000;
	r->launcher_data = j;
	*out = j;
	return 0;
}

/* spark-submit: <spark.home>/bin/spark-submit, else from PATH. */
static char *find_submit(struct runner *r, struct err *e)
{
	const char *path = getenv("PATH");
	char *dirs, *save = NULL, *d, *hit = NULL;

	if (r->set.spark.home != NULL) {
		hit = xasprintf("%s/bin/spark-submit", r->set.spark.home);
		if (access(hit, X_OK) == 0)
			return hit;
		err_sys(e, TERR_UNSUPP, "spark: %s (spark_home)", hit);
		free(hit);
		return NULL;
	}
	dirs = xstrdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (d = strtok_r(dirs, ":", &save); d && !hit;
	     d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/spark-submit", d);
		if (d[0] == '/' && access(p, X_OK) == 0)
			hit = p;
		else
			free(p);
	}
	free(dirs);
	if (hit == NULL)
		err_set(e, TERR_UNSUPP,
		        "spark: spark-submit is not on PATH (install Spark on "
		        "the head node, or set spark_home; docs/spark.md)");
	return hit;
}

/* Append NAME=value to r->envp unless the job set NAME itself. */
static void env_add(struct runner *r, const char *name, const char *value)
{
	size_t n = 0, len = strlen(name);
	char **v;

	for (; r->envp[n] != NULL; n++)
		if (strncmp(r->envp[n], name, len) == 0 &&
		    r->envp[n][len] == '=')
			return;
	v = xcalloc(n + 2, sizeof(char *));
	memcpy(v, r->envp, n * sizeof(char *));
	v[n] = xasprintf("%s=%s", name, value);
	free(r->envp);
	r->envp = v;
}

/* Fields this launcher cannot honour: refused, never dropped. */
static int refuse_unhonoured(const struct jobspec *sp, struct err *e)
{
	if (sp->network == NET_NONE)
		return err_set(
		    e, TERR_UNSUPP,
		    "network: 'none' cannot be honoured by the spark "
		    "launcher (the driver talks to the cluster)");
	if (sp->spark.deploy_mode && strcmp(sp->spark.deploy_mode, "client"))
		return err_set(
		    e, TERR_UNSUPP,
		    "spark.deploy_mode: 'cluster' is not supported "
		    "by this runner yet (the driver runs on the head "
		    "node in client mode; docs/spark.md)");
	return 0;
}

/* YARN: the RUNNING node managers (`yarn node -list`) as workers. */
static int check_yarn(struct runner *r, struct spark_job *j, struct err *e)
{
	struct spark_cluster c = {0};
	struct yarn_nodes n;

	if (yarn_nodes_get(j->yarn_cmd, j->yarn_conf, &n, e) < 0)
		return err_wrap(e, "spark: the node managers of yarn");
	c.workers = n.nodes;
	c.cores = n.vcores;
	c.cores_free = n.vcores - n.vcores_used;
	c.max_worker_cores = n.max_node_vcores;
	c.memory_mb = n.memory_mb;
	c.max_worker_memory_mb = n.max_node_memory_mb;
	return spark_check_fits(r->spec, &c, j->master, e);
}

/* The cluster can hold the job at all (standalone masters, YARN). */
static int check_cluster(struct runner *r, struct spark_job *j, struct err *e)
{
	struct spark_cluster c;
	json_t *st = NULL;
	int rc;

	if (j->yarn)
		return check_yarn(r, j, e);
	if (j->ui == NULL)
		return 0;
	if ((rc = spark_master_status(j->ui, &st, e)) < 0)
		return err_wrap(e, "spark: the status of %s", j->master);
	spark_status_cluster(st, &c);
	json_decref(st);
	return spark_check_fits(r->spec, &c, j->master, e);
}

/* The first address of host (the sandbox has its own hostname, which
 * does not resolve: Spark's driver is told its address); "" if none. */
static void host_address(const char *host, char *out, size_t size)
{
	struct addrinfo hints = {0}, *ai = NULL;

	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	out[0] = '\0';
	if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai != NULL)
		inet_ntop(
		    AF_INET,
		    &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr, out,
		    (socklen_t)size);
	if (ai != NULL)
		freeaddrinfo(ai);
}

/* The submit argv in place of the job's command, and the environment
 * spark-submit and PySpark need. */
static int build_submit(struct runner *r, struct spark_job *j, struct err *e)
{
	char host[256] = "", addr[64], *submit, *name, **argv, *python;
	struct spark_submit s = {0};

	if ((submit = find_submit(r, e)) == NULL)
		return e->code;
	if (r->set.spark.driver_host == NULL && gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "localhost");
	name = xasprintf("tether-%s-%lld", r->job_id, (long long)r->attempt);
	s.submit = submit;
	s.master = j->master;
	s.name = name;
	s.driver_host =
	    r->set.spark.driver_host ? r->set.spark.driver_host : host;
	s.events_dir = "/tether/outputs/" SPARK_EVENTS;
	python = r->env.prefix ? xasprintf("%s/bin/python", r->env.prefix)
	                       : xstrdup(r->set.default_python);
	/* The executors of a cluster get the job's environment itself:
	 * packed (cached by its key), unpacked in each executor's directory
	 * as tether-env; the driver keeps the prefix. */
	if (r->env.prefix != NULL && r->env.key[0] != '\0' &&
	    !spark_master_local(j->master)) {
		if (spark_env_archive(r, &j->env_dir, e) < 0) {
			free(python);
			free(name);
			free(submit);
			return err_wrap(e, "spark: pack the environment for "
			                   "the executors");
		}
		s.archive_env =
		    SPARK_ENV_MOUNT "/" SPARK_ENV_ARCHIVE "#" SPARK_ENV_NAME;
		env_add(r, "PYSPARK_DRIVER_PYTHON", python);
		env_add(r, "PYSPARK_PYTHON", "./" SPARK_ENV_NAME "/bin/python");
	}
	argv = spark_submit_argv(r->spec, &s);
	runner_strv_free(r->argv);
	r->argv = argv;
	env_add(r, "PYSPARK_PYTHON", python);
	if (r->set.spark.home != NULL)
		env_add(r, "SPARK_HOME", r->set.spark.home);
	if (j->yarn && j->yarn_conf != NULL)
		env_add(r, "HADOOP_CONF_DIR", j->yarn_conf);
	env_add(r, "SPARK_LOCAL_HOSTNAME", s.driver_host);
	host_address(s.driver_host, addr, sizeof(addr));
	if (addr[0] != '\0')
		env_add(r, "SPARK_LOCAL_IP", addr);
	free(python);
	free(name);
	free(submit);
	return 0;
}

/* <outputs>/spark-events, the job user's: Spark needs it to exist. */
static int make_events_dir(struct runner *r, struct spark_job *j, struct err *e)
{
	if (mkdir(j->events, 0755) < 0 && errno != EEXIST)
		return err_sys(e, TERR_IO, "mkdir %s", j->events);
	if (lchown(j->events, r->uid, r->gid) < 0)
		return err_sys(e, TERR_IO, "chown %s", j->events);
	return 0;
}

static int spark_prepare(struct runner *r, struct err *e)
{
	struct spark_job *j;
	int rc;

	if ((rc = refuse_unhonoured(r->spec, e)) < 0 ||
	    (rc = job_get(r, &j, e)) < 0 || (rc = check_cluster(r, j, e)) < 0 ||
	    (rc = build_submit(r, j, e)) < 0 ||
	    (rc = make_events_dir(r, j, e)) < 0)
		return rc;
	SANDBOX(r, j, rc = launcher_sandbox.prepare(r, e));
	/* the driver outlives a runner killed mid-job (spark_reattach) */
	if (rc == 0)
		SANDBOX(r, j, sandbox_set_detached(r));
	if (rc == 0 && j->env_dir != NULL)
		SANDBOX(r, j,
		        sandbox_add_mount(r, j->env_dir, SPARK_ENV_MOUNT));
	return rc;
}

static int spark_start(struct runner *r, int *out_fd, int *done_fd,
                       struct err *e)
{
	struct spark_job *j = r->launcher_data;
	int rc;

	SANDBOX(r, j, rc = launcher_sandbox.start(r, out_fd, done_fd, e));
	if (rc < 0)
		return rc;
	runner_logf(r, "spark", "spark-submit --master %s (client mode)",
	            j->master);
	if (json_save(j, e) < 0)
		log_warn("job=%s spark.json: %s", r->job_id, e->msg);
	if (pthread_create(&j->thread, NULL, watch_main, j) != 0)
		return err_set(e, TERR_FAIL, "spark: watcher thread");
	j->thread_on = true;
	return 0;
}

static int spark_signal(struct runner *r, int sig, struct err *e)
{
	struct spark_job *j = r->launcher_data;
	int rc;

	/* A checkpoint signal goes to the driver alone (it may still use
	 * its executors to save); a stop ends the applications first. */
	if (sig == SIGTERM)
		kill_apps(r, j);
	SANDBOX(r, j, rc = launcher_sandbox.signal(r, sig, e));
	return rc;
}

static int spark_kill(struct runner *r, struct err *e)
{
	struct spark_job *j = r->launcher_data;
	int rc;

	kill_apps(r, j);
	SANDBOX(r, j, rc = launcher_sandbox.kill(r, e));
	return rc;
}

/* The final states of the job's applications, in the log; KILLED by
 * someone else (the master's UI) is the attempt's `cancelled`. */
static void final_states(struct runner *r, struct spark_job *j,
                         struct launch_exit *ex)
{
	struct err e = {0};
	json_t *st = NULL;
	char state[32];

	if (j->napps == 0 || (!j->yarn && j->ui == NULL) ||
	    (!j->yarn && spark_master_status(j->ui, &st, &e) < 0))
		return;
	for (size_t i = 0; i < j->napps; i++) {
		if (j->yarn
		        ? yarn_app_state(j->yarn_cmd, j->yarn_conf, j->apps[i],
		                         state, sizeof(state), &e) < 0
		        : !spark_status_app(st, j->apps[i], state,
		                            sizeof(state))) {
			if (j->yarn)
				runner_logf(r, "spark", "state of %s: %s",
				            j->apps[i], e.msg);
			continue;
		}
		runner_logf(r, "spark", "application %s ended %s", j->apps[i],
		            state);
		if (strcmp(state, "KILLED") == 0 && !j->we_stopped)
			ex->reason = "cancelled";
		else if (strcmp(state, "FAILED") == 0 && ex->reason == NULL &&
		         ex->exit_code == 0 && ex->signal == 0)
			ex->reason = "failed";
		if (i + 1 == j->napps)
			snprintf(j->state, sizeof(j->state), "%s", state);
	}
	json_decref(st);
}

/* Each application's executor logs into the outputs (a failure is
 * logged: the job's own result stands). */
static void executor_logs(struct runner *r, struct spark_job *j)
{
	for (size_t i = 0; j->ui != NULL && i < j->napps; i++) {
		struct err e = {0};
		int n = 0;

		if (spark_executor_logs(r, j->ui, j->apps[i], &n, &e) < 0)
			runner_logf(r, "spark",
			            "executor logs of %s: %s (%d fetched)",
			            j->apps[i], e.msg, n);
		else
			runner_logf(r, "spark",
			            "executor logs of %s: %d executors in "
			            "outputs/spark-executors/%s",
			            j->apps[i], n, j->apps[i]);
	}
}

static int spark_collect(struct runner *r, struct launch_exit *ex,
                         struct err *e)
{
	struct spark_job *j = r->launcher_data;
	struct err ignore = {0};
	int rc;

	SANDBOX(r, j, rc = launcher_sandbox.collect(r, ex, e));
	watch_stop(j);
	scan_events(j);
	if (rc == 0)
		final_states(r, j, ex);
	executor_logs(r, j);
	json_save(j, &ignore);
	return rc;
}

/* The driver outlives its runner (a detached sandbox): adopt it, resume
 * its output where the log ends and watch its applications again.  Only
 * when that fails are the attempt's applications killed on the cluster
 * (no orphaned executors hold the cluster's cores). */
static int spark_reattach(struct runner *r, int *out_fd, int *done_fd,
                          struct err *e)
{
	struct spark_job *j;
	int rc;

	if ((rc = job_get(r, &j, e)) < 0)
		return rc;
	SANDBOX(r, j, rc = sandbox_adopt(r, out_fd, done_fd, e));
	if (rc < 0) {
		kill_apps(r, j);
		return rc;
	}
	scan_events(j);
	j->saved = j->napps; /* state.json has the latest already */
	if (pthread_create(&j->thread, NULL, watch_main, j) != 0)
		return err_set(e, TERR_FAIL, "spark: watcher thread");
	j->thread_on = true;
	return 0;
}

/* state.json's launcher_ref follows the latest application (main thread:
 * the supervisor writes state.json); WAITING on the master is pending. */
static bool spark_pending(struct runner *r, char *reason, size_t size)
{
	struct spark_job *j = r->launcher_data;
	struct err e = {0};
	bool waiting;

	if (j == NULL)
		return false;
	pthread_mutex_lock(&j->lock);
	if (j->napps != j->saved) {
		snprintf(r->state.launcher_ref, sizeof(r->state.launcher_ref),
		         "%s", j->apps[j->napps - 1]);
		j->saved = j->napps;
		pthread_mutex_unlock(&j->lock);
		if (runner_save_state(r, &e) < 0)
			log_warn("job=%s state.json: %s", r->job_id, e.msg);
		runner_logf(r, "spark", "application %s on %s",
		            r->state.launcher_ref, j->master);
		pthread_mutex_lock(&j->lock);
	}
	waiting = strcmp(j->state, "WAITING") == 0;
	pthread_mutex_unlock(&j->lock);
	snprintf(reason, size, "%s", waiting ? "WAITING for executors" : "");
	return waiting;
}

static void spark_cleanup(struct runner *r)
{
	struct spark_job *j = r->launcher_data;

	if (j == NULL)
		return;
	watch_stop(j);
	SANDBOX(r, j, launcher_sandbox.cleanup(r));
	r->launcher_data = NULL;
	job_free(j);
}

const struct launcher_ops launcher_spark = {
    .name = "spark",
    .prepare = spark_prepare,
    .start = spark_start,
    .signal = spark_signal,
    .kill = spark_kill,
    .collect = spark_collect,
    .reattach = spark_reattach,
    .cleanup = spark_cleanup,
    .pending = spark_pending,
};
