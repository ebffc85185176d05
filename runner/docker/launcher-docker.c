/* launcher-docker.c: the docker launcher.  One container per attempt,
 * created through the Engine API, its output followed from the engine's
 * `local` log driver (binary-safe, kept while the container exists) so a
 * new runner can re-attach without loss or duplication.  See
 * docs/docker.md. */
#include "runner/docker/docker.h"
#include "runner/docker/launcher-docker.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/launcher.h"
#include "runner/runner.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The job user must own its directories (mounted into the container). */
static int own_dirs(struct runner *r, struct err *e)
{
	const char *dirs[] = {r->work_dir, r->outputs_dir, r->checkpoints_dir};

	for (size_t i = 0; i < 3; i++) {
		if (mkdir_p(dirs[i], 0700, e) < 0 ||
		    runner_chown_tree(dirs[i], r->uid, r->gid, e) < 0)
			return err_wrap(e, "docker launcher");
	}
	return 0;
}

/* r->launcher_data: the launcher's state with its engine connection. */
static int dl_open(struct runner *r, struct err *e)
{
	struct dlaunch *dl = xcalloc(1, sizeof(*dl));
	int rc;

	dl->out_w = dl->done_w = -1;
	if ((rc = docker_open(r->set.docker_socket, &dl->d, e)) < 0) {
		free(dl);
		return rc;
	}
	r->launcher_data = dl;
	return 0;
}

static int docker_prepare(struct runner *r, struct err *e)
{
	int rc;

	if (r->env.image == NULL)
		return err_set(e, TERR_INVAL,
		               "the docker launcher needs a docker "
		               "environment: set environment.kind to \"docker\""
		               " with an image or a dockerfile");
	if ((rc = own_dirs(r, e)) < 0)
		return rc;
	return dl_open(r, e);
}

/* Record the container (state.json and docker.json) before it starts, so
 * that a crash at any later point finds it again. */
static int record_container(struct runner *r, struct dlaunch *dl, struct err *e)
{
	struct stat st;
	json_t *j;
	char *text, *path;
	int rc;

	if (fstat(r->log_fd, &st) < 0)
		return err_sys(e, TERR_IO, "stat the job log");
	snprintf(r->state.launcher_ref, sizeof(r->state.launcher_ref), "%s",
	         dl->id);
	snprintf(r->state.launcher, sizeof(r->state.launcher), "docker");
	j = json_pack("{s:s, s:I}", "container", dl->id, "log_start",
	              (json_int_t)st.st_size);
	text = json_dumps(j, JSON_COMPACT);
	path = attempt_path(r->dir, DOCKER_STATE_FILE);
	rc = file_write_atomic(path, text, strlen(text), 0600, e);
	free(path);
	free(text);
	json_decref(j);
	if (rc < 0)
		return rc;
	return runner_save_state(r, e);
}

/* Create the container; a leftover of an earlier runner that never
 * started is replaced, one that started is adopted (*adopted). */
static int create_container(struct runner *r, struct dlaunch *dl, bool *adopted,
                            struct err *e)
{
	char *name = docker_container_name(r), *path;
	json_t *body = NULL, *reply = NULL;
	int rc;

	*adopted = false;
	if ((rc = docker_container_body(r, r->env.image, &body, e)) < 0)
		goto out;
	path = xasprintf("/containers/create?name=%s", name);
	rc = docker_call(dl->d, "POST", path, body, &reply, e);
	free(path);
	if (rc == TERR_CONFLICT) {
		rc = dlaunch_adopt(dl, name, adopted, e);
		if (rc == 0 && !*adopted)
			rc = create_container(r, dl, adopted, e);
		goto out;
	}
	if (rc < 0)
		goto out;
	snprintf(dl->id, sizeof(dl->id), "%s",
	         json_string_value(json_object_get(reply, "Id"))
	             ? json_string_value(json_object_get(reply, "Id"))
	             : "");
	if (dl->id[0] == '\0')
		rc = err_set(e, TERR_PROTO, "container create: no Id");
out:
	json_decref(body);
	json_decref(reply);
	free(name);
	return rc;
}

/* The log (read-only) and the offset where the job's output began in it,
 * for matching what an earlier runner wrote; -1 when unknown. */
static int log_for_match(struct runner *r, int64_t *start)
{
	char *path = attempt_path(r->dir, DOCKER_STATE_FILE), *text = NULL;
	char *log = attempt_path(r->dir, ATTEMPT_LOG);
	json_t *j = NULL;
	size_t len;
	int fd = -1;

	*start = -1;
	if (file_read_all(path, 4096, &text, &len, NULL) == 0 &&
	    (j = json_loadb(text, len, 0, NULL)) != NULL &&
	    json_is_integer(json_object_get(j, "log_start")))
		*start = json_integer_value(json_object_get(j, "log_start"));
	if (*start >= 0)
		fd = open(log, O_RDONLY | O_CLOEXEC);
	json_decref(j);
	free(text);
	free(path);
	free(log);
	return fd;
}

static int docker_start(struct runner *r, int *out_fd, int *done_fd,
                        struct err *e)
{
	struct dlaunch *dl = r->launcher_data;
	int64_t start = 0;
	int log_fd = -1;
	char *path;
	bool adopted;
	int rc;

	if ((rc = create_container(r, dl, &adopted, e)) < 0)
		return err_wrap(e, "docker launcher");
	if (adopted) {
		/* an earlier runner of this attempt started it: follow it
		 * from what the log holds (docker.json keeps its start) */
		log_info("job=%s: container %.12s of an earlier runner still "
		         "exists: following it, not starting another",
		         r->job_id, dl->id);
		log_fd = log_for_match(r, &start);
		snprintf(r->state.launcher_ref, sizeof(r->state.launcher_ref),
		         "%s", dl->id);
	} else if ((rc = record_container(r, dl, e)) < 0) {
		return err_wrap(e, "docker launcher");
	} else {
		path = xasprintf("/containers/%s/start", dl->id);
		rc = docker_call(dl->d, "POST", path, NULL, NULL, e);
		free(path);
		if (rc < 0)
			return err_wrap(e, "start container %.12s", dl->id);
	}
	r->state.job_pid = dlaunch_pid(dl);
	if ((rc = runner_save_state(r, e)) < 0)
		return rc;
	return dlaunch_follow(dl, log_fd, start, out_fd, done_fd, e);
}

static int docker_signal(struct runner *r, int sig, struct err *e)
{
	struct dlaunch *dl = r->launcher_data;

	if (dl == NULL || dl->id[0] == '\0')
		return err_set(e, TERR_NOTFOUND, "no container to signal");
	return dlaunch_signal(dl, sig, e);
}

static int docker_kill(struct runner *r, struct err *e)
{
	return docker_signal(r, SIGKILL, e);
}

static int docker_collect(struct runner *r, struct launch_exit *ex,
                          struct err *e)
{
	struct dlaunch *dl = r->launcher_data;
	int rc;

	if (dl == NULL)
		return err_set(e, TERR_INVAL, "docker launcher not started");
	dlaunch_join(dl);
	if ((rc = dlaunch_exit(dl, ex, e)) < 0)
		return rc;
	/* killed at the limit: it peaked there, whatever the last sample */
	if (ex->oom && r->spec->resources.memory > ex->peak_memory_bytes)
		ex->peak_memory_bytes = r->spec->resources.memory;
	dlaunch_remove(dl);
	return 0;
}

static int docker_reattach(struct runner *r, int *out_fd, int *done_fd,
                           struct err *e)
{
	struct dlaunch *dl = r->launcher_data;
	int64_t start;
	int rc, fd;

	if (r->state.launcher_ref[0] == '\0')
		return err_set(e, TERR_NOTFOUND, "no container recorded");
	if (dl == NULL) {
		if ((rc = dl_open(r, e)) < 0)
			return rc;
		dl = r->launcher_data;
	}
	snprintf(dl->id, sizeof(dl->id), "%s", r->state.launcher_ref);
	if ((rc = dlaunch_check(dl, e)) < 0)
		return rc;
	r->state.job_pid = dlaunch_pid(dl);
	fd = log_for_match(r, &start);
	return dlaunch_follow(dl, fd, start, out_fd, done_fd, e);
}

static void docker_cleanup(struct runner *r)
{
	struct dlaunch *dl = r->launcher_data;

	if (dl == NULL)
		return;
	dl->stop = 1;
	dlaunch_join(dl);
	dlaunch_remove(dl);
	docker_close(dl->d);
	free(dl->mem_dir);
	free(dl->cpu_dir);
	free(dl);
	r->launcher_data = NULL;
}

const struct launcher_ops launcher_docker = {
    .name = "docker",
    .prepare = docker_prepare,
    .start = docker_start,
    .signal = docker_signal,
    .kill = docker_kill,
    .collect = docker_collect,
    .reattach = docker_reattach,
    .cleanup = docker_cleanup,
};
