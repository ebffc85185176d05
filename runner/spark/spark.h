/* spark.h: the pieces of the spark launcher (launcher-spark.c).
 *
 * spark-submit.c  the spark-submit argv and the master's web UI address
 *                 (pure functions)
 * spark-master.c  the standalone master's JSON status and kill page
 *                 (libcurl): capacity, application states, kill
 * launcher-spark.c the launcher ops: the driver runs in the sandbox
 *                 launcher (client mode, a detached sandbox that outlives
 *                 its runner), the application is found by its event log
 *                 and recorded in spark.json and state.json
 * spark-archive.c the job's environment packed for the executors
 * docs/spark.md describes the files and the mapping. */
#ifndef TETHER_SPARK_H
#define TETHER_SPARK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct err;
struct runner;
struct jobspec;

#define SPARK_JSON       "spark.json"
#define SPARK_EVENTS     "spark-events" /* under the job's outputs */
#define SPARK_MAX_APPS   16             /* applications one job may start */
#define SPARK_APP_ID_MAX 64

/* What spark-submit is told; strings are borrowed. */
struct spark_submit {
	const char *submit;      /* path of spark-submit */
	const char *master;      /* resolved: spec, else the agent's */
	const char *name;        /* --name tether-<job>-<attempt> */
	const char *driver_host; /* spark.driver.host */
	const char *events_dir;  /* spark.eventLog.dir as the job sees it */
	const char *archive_env; /* packed environment for --archives, or
	                            NULL */
};

/* The standalone master's view of the cluster (its /json/ page). */
struct spark_cluster {
	int64_t workers; /* ALIVE workers */
	int64_t cores, cores_free;
	int64_t max_worker_cores; /* the largest ALIVE worker's */
	int64_t memory_mb, max_worker_memory_mb;
};

/* spark-submit.c */
/* The argv (heap, NULL-terminated; runner_strv_free it): options from
 * the spec's spark object and s, then command[0] (the application) and its
 * arguments.  Never a shell: every value is one word. */
char **spark_submit_argv(const struct jobspec *sp,
                         const struct spark_submit *s);
/* The master's web UI for a spark://host:port master: ui when set, else
 * http://<first host>:8080 (heap); NULL for local and yarn masters. */
char *spark_master_ui(const char *master, const char *ui);
/* True for local, local[N], ...: no cluster behind it. */
bool spark_master_local(const char *master);
/* Bytes of a Spark size ("512m", "2g", "1024" = MiB) in MiB; -1 bad. */
int64_t spark_size_mb(const char *v);
/* True when name looks like an application id of Spark's (app-..., local-,
 * application_...), as an event log file is named (".inprogress" and
 * ".lz4" ... suffixes cut): out gets the id. */
bool spark_app_id_from_file(const char *name, char out[SPARK_APP_ID_MAX]);

/* spark-master.c */
/* GET url into out (capped by out's max); HTTP >= 400 is an error. */
int spark_http_get(const char *url, struct buf *out, struct err *e);
/* GET <ui>/json/ into *status (new reference). */
int spark_master_status(const char *ui, json_t **status, struct err *e);
/* The cluster totals of a status document. */
void spark_status_cluster(json_t *status, struct spark_cluster *c);
/* The state of application id in a status document (RUNNING, WAITING,
 * FINISHED, FAILED, KILLED, ...) into state; false when not listed. */
bool spark_status_app(json_t *status, const char *id, char *state, size_t size);
/* The name of application id (spark.app.name: spark-submit's --name) in a
 * status document into name; false when not listed. */
bool spark_status_app_name(json_t *status, const char *id, char *name,
                           size_t size);
/* Ask the master to kill an application (its UI's kill link: the master
 * removes it as KILLED). */
int spark_master_kill(const char *ui, const char *id, struct err *e);
/* Refuse a job the cluster can never hold, naming the field. */
int spark_check_fits(const struct jobspec *sp, const struct spark_cluster *c,
                     const char *master, struct err *e);

/* spark-archive.c */
#define SPARK_ENV_ARCHIVE "env.tar.gz"
#define SPARK_ENV_MOUNT   "/tether/spark-env" /* the directory, in the job */
#define SPARK_ENV_NAME    "tether-env"        /* unpacked as, on executors */
/* The job's cached environment (r->env) packed once per key into
 * <env_dir>/.spark/<key>/env.tar.gz; *dir gets that directory (heap). */
int spark_env_archive(struct runner *r, char **dir, struct err *e);

/* spark-logs.c */
/* The last MiB of each executor's stdout and stderr of app (standalone:
 * from the workers' web UIs) into outputs/spark-executors/<app>/<id>/;
 * *count: executors fetched. */
int spark_executor_logs(struct runner *r, const char *ui, const char *app,
                        int *count, struct err *e);
/* The same on YARN: the containers' aggregated logs (`yarn logs`, once the
 * aggregation ended) into outputs/spark-executors/<app>/<container>/. */
int spark_yarn_executor_logs(struct runner *r, const char *cmd,
                             const char *conf, const char *app, int *count,
                             struct err *e);

#endif
