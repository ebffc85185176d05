/* spark-logs.c: the executors' logs of a finished application, as the
 * job's outputs (docs/spark.md, "Logs").  A standalone worker keeps each
 * executor's stdout and stderr in its work directory and serves them on
 * its web UI (/log/?appId=&executorId=&logType=): for every worker the
 * master lists, its /json/ names the executors it ran for the
 * application, and the last SPARK_EXEC_LOG_MAX bytes of each log go to
 * outputs/spark-executors/<app>/<executor>/{stdout,stderr}.  On YARN the
 * NodeManagers aggregate a finished application's container logs: once
 * `yarn application -status` says the aggregation ended, `yarn logs
 * -applicationId` gives them all, and the last SPARK_EXEC_LOG_MAX bytes of
 * each container's stdout and stderr go to
 * outputs/spark-executors/<app>/<container>/{stdout,stderr}.
 *
 * The outputs directory is the job user's: root writes there only after
 * the job ended, creating every directory and file itself (no symlink
 * followed, no existing file reused), and hands them to the job user. */
#include "runner/runner.h"
#include "runner/spark/spark.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"
#include "common/yarn.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPARK_EXEC_LOG_MAX  (1 << 20)
#define YARN_LOGS_MAX       (64 << 20) /* all of `yarn logs`' output */
#define YARN_AGG_WAIT_MS    60000      /* for the aggregation to end */
#define SPARK_MAX_EXECUTORS 256

/* mkdirat + open, never through a symlink; the job user's. */
static int subdir(struct runner *r, int dfd, const char *name, struct err *e)
{
	int fd;

	if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
		return err_sys(e, TERR_IO, "mkdir %s", name);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, TERR_IO, "open %s", name);
	if (fchown(fd, r->uid, r->gid) < 0) {
		close(fd);
		return err_sys(e, TERR_IO, "chown %s", name);
	}
	return fd;
}

/* outputs/spark-executors/<app>/, made as the job user's: its fd (caller
 * closes), or < 0. */
static int app_dir(struct runner *r, const char *app, struct err *e)
{
	int out, top, dir = -1;

	out = open(r->outputs_dir,
	           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (out < 0)
		return err_sys(e, TERR_IO, "open %s", r->outputs_dir);
	top = subdir(r, out, "spark-executors", e);
	if (top >= 0) {
		dir = subdir(r, top, app, e);
		close(top);
	}
	close(out);
	return top < 0 ? top : dir;
}

/* A new file name in dfd with data (O_EXCL: an existing name is left). */
static int put(struct runner *r, int dfd, const char *name, const char *data,
               size_t len, struct err *e)
{
	int fd =
	    openat(dfd, name,
	           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	int rc = 0;

	if (fd < 0)
		return err_sys(e, TERR_IO, "create %s", name);
	if ((rc = fd_write_all(fd, data, len, e)) == 0 &&
	    fchown(fd, r->uid, r->gid) < 0)
		rc = err_sys(e, TERR_IO, "chown %s", name);
	close(fd);
	return rc;
}

/* One executor's stdout and stderr into <dfd>/<id>/. */
static int fetch_one(struct runner *r, const char *worker, const char *app,
                     const char *id, int dfd, struct err *e)
{
	static const char *const kinds[] = {"stdout", "stderr", NULL};
	int sub, rc = 0;

	if ((sub = subdir(r, dfd, id, e)) < 0)
		return sub;
	for (int k = 0; kinds[k] && rc == 0; k++) {
		char *url =
		    xasprintf("%s/log/?appId=%s&executorId=%s&logType=%s"
		              "&byteLength=%d",
		              worker, app, id, kinds[k], SPARK_EXEC_LOG_MAX);
		struct buf b;

		buf_init(&b, SPARK_EXEC_LOG_MAX + 4096);
		if ((rc = spark_http_get(url, &b, e)) == 0)
			rc = put(r, sub, kinds[k], b.data ? b.data : "", b.len,
			         e);
		buf_free(&b);
		free(url);
	}
	close(sub);
	return rc;
}

/* The executor ids that worker (its /json/) ran for app. */
static size_t worker_executors(const char *worker, const char *app,
                               char ids[][16], size_t max)
{
	static const char *const lists[] = {"executors", "finishedexecutors"};
	json_t *st = NULL, *x;
	struct err e = {0};
	size_t n = 0, i;

	if (spark_master_status(worker, &st, &e) < 0) /* its /json/ too */
		return 0;
	for (int l = 0; l < 2; l++)
		json_array_foreach(json_object_get(st, lists[l]), i, x)
		{
			const char *a =
			    json_string_value(json_object_get(x, "appid"));
			json_t *id = json_object_get(x, "id");
			if (a == NULL || strcmp(a, app) != 0 ||
			    !json_is_integer(id) || n >= max)
				continue;
			snprintf(ids[n++], 16, "%lld",
			         (long long)json_integer_value(id));
		}
	json_decref(st);
	return n;
}

int spark_executor_logs(struct runner *r, const char *ui, const char *app,
                        int *count, struct err *e)
{
	json_t *st = NULL, *w;
	int dir = -1, rc;
	size_t i;

	*count = 0;
	if ((rc = spark_master_status(ui, &st, e)) < 0)
		return rc;
	if ((dir = app_dir(r, app, e)) < 0) {
		rc = dir;
		goto done;
	}
	json_array_foreach(json_object_get(st, "workers"), i, w)
	{
		const char *web =
		    json_string_value(json_object_get(w, "webuiaddress"));
		char ids[SPARK_MAX_EXECUTORS][16];
		size_t n;

		if (web == NULL || (strncmp(web, "http://", 7) != 0 &&
		                    strncmp(web, "https://", 8) != 0))
			continue;
		n = worker_executors(web, app, ids, SPARK_MAX_EXECUTORS);
		for (size_t k = 0; k < n && *count < SPARK_MAX_EXECUTORS; k++)
			if ((rc = fetch_one(r, web, app, ids[k], dir, e)) == 0)
				(*count)++;
			else
				goto done;
	}
	rc = 0;
done:
	if (dir >= 0)
		close(dir);
	json_decref(st);
	return rc;
}

/* The logs of `yarn logs` into the outputs: a container's stdout and
 * stderr (the last SPARK_EXEC_LOG_MAX bytes), nothing else. */
struct yarn_put {
	struct runner *r;
	int dir; /* outputs/spark-executors/<app> */
	char last[YARN_NAME_MAX];
	int count;
	struct err *e;
};

static bool container_name_ok(const char *c)
{
	if (strncmp(c, "container_", 10) != 0 || strlen(c) > 96)
		return false;
	for (const char *p = c + 10; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

static int yarn_put_log(const char *container, const char *type,
                        const char *data, size_t len, void *arg)
{
	struct yarn_put *y = arg;
	int sub, rc;

	if (!container_name_ok(container) ||
	    (strcmp(type, "stdout") && strcmp(type, "stderr")))
		return 0;
	if (len > SPARK_EXEC_LOG_MAX) {
		data += len - SPARK_EXEC_LOG_MAX;
		len = SPARK_EXEC_LOG_MAX;
	}
	if ((sub = subdir(y->r, y->dir, container, y->e)) < 0)
		return sub;
	/* listed twice: the first stands */
	rc = faccessat(sub, type, F_OK, AT_SYMLINK_NOFOLLOW) == 0
	         ? 0
	         : put(y->r, sub, type, data, len, y->e);
	close(sub);
	if (rc == 0 && strcmp(y->last, container) != 0) {
		snprintf(y->last, sizeof(y->last), "%s", container);
		y->count++;
	}
	return rc;
}

/* Wait (bounded) for the NodeManagers to finish aggregating app's logs. */
static int yarn_aggregated(const char *cmd, const char *conf, const char *app,
                           struct err *e)
{
	int64_t deadline = now_mono_ms() + YARN_AGG_WAIT_MS;
	struct yarn_app a;

	for (;;) {
		if (yarn_app_report(cmd, conf, app, YARN_TIMEOUT_MS, &a, e) < 0)
			return e->code;
		if (strcmp(a.log_aggregation, "DISABLED") == 0)
			return err_set(e, TERR_UNSUPP,
			               "log aggregation is off on the cluster "
			               "(yarn.log-aggregation-enable)");
		if (strcmp(a.log_aggregation, "SUCCEEDED") == 0 ||
		    strcmp(a.log_aggregation, "FAILED") == 0 ||
		    strcmp(a.log_aggregation, "TIME_OUT") == 0 ||
		    now_mono_ms() > deadline)
			return 0; /* what there is */
		usleep(1000 * 1000);
	}
}

int spark_yarn_executor_logs(struct runner *r, const char *cmd,
                             const char *conf, const char *app, int *count,
                             struct err *e)
{
	struct yarn_put y = {.r = r, .dir = -1, .e = e};
	int rc;
	struct buf b;

	*count = 0;
	buf_init(&b, YARN_LOGS_MAX);
	if ((rc = yarn_aggregated(cmd, conf, app, e)) < 0 ||
	    (rc = yarn_app_logs(cmd, conf, app, &b, YARN_TIMEOUT_MS, e)) < 0)
		goto done;
	if ((y.dir = app_dir(r, app, e)) < 0) {
		rc = y.dir;
		goto done;
	}
	rc = yarn_logs_parse(b.data, b.len, yarn_put_log, &y);
	rc = rc < 0 ? rc : 0;
done:
	*count = y.count;
	if (y.dir >= 0)
		close(y.dir);
	buf_free(&b);
	return rc;
}
