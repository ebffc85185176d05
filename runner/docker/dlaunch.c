/* dlaunch.c: a job container's life after create: the follower thread
 * (output from the engine's log stream into a pipe, then the exit into
 * done_fd), signals, exit status and removal. */
#include "runner/docker/launcher-docker.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FOLLOW_RETRIES 20

static int inspect(struct dlaunch *dl, const char *ref, json_t **out,
                   struct err *e)
{
	char *path = xasprintf("/containers/%s/json", ref);
	int rc = docker_call(dl->d, "GET", path, NULL, out, e);

	free(path);
	return rc;
}

static json_t *state_of(json_t *info)
{
	return json_object_get(info, "State");
}

int dlaunch_adopt(struct dlaunch *dl, const char *name, bool *adopted,
                  struct err *e)
{
	json_t *info = NULL;
	const char *started, *id;
	char *path;
	int rc;

	if ((rc = inspect(dl, name, &info, e)) < 0)
		return err_wrap(e, "container %s exists", name);
	started =
	    json_string_value(json_object_get(state_of(info), "StartedAt"));
	id = json_string_value(json_object_get(info, "Id"));
	snprintf(dl->id, sizeof(dl->id), "%s", id ? id : name);
	*adopted = started != NULL && strncmp(started, "0001-", 5) != 0;
	if (!*adopted) {
		path = xasprintf("/containers/%s?force=1", dl->id);
		rc = docker_call(dl->d, "DELETE", path, NULL, NULL, e);
		free(path);
	} else
		log_info("adopting container %.12s (%s), started at %s", dl->id,
		         name, started);
	json_decref(info);
	return rc;
}

int dlaunch_check(struct dlaunch *dl, struct err *e)
{
	json_t *info = NULL;
	int rc = inspect(dl, dl->id, &info, e);

	if (rc == TERR_NOTFOUND)
		err_wrap(e, "container %.12s is gone", dl->id);
	json_decref(info);
	return rc;
}

pid_t dlaunch_pid(struct dlaunch *dl)
{
	json_t *info = NULL;
	pid_t pid = 0;

	if (inspect(dl, dl->id, &info, NULL) == 0)
		pid = (pid_t)json_integer_value(
		    json_object_get(state_of(info), "Pid"));
	json_decref(info);
	return pid;
}

/* Write all of data to the pipe, giving up when asked to stop. */
static int pipe_write(struct dlaunch *dl, const char *data, size_t len)
{
	struct pollfd p = {.fd = dl->out_w, .events = POLLOUT};
	ssize_t n;

	while (len > 0) {
		if (dl->stop)
			return TERR_TIMEOUT;
		if (poll(&p, 1, 200) <= 0)
			continue;
		if ((n = write(dl->out_w, data, len)) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return TERR_IO;
		}
		data += n, len -= (size_t)n;
	}
	return 0;
}

/* How many leading bytes of data equal the log at the job's raw offset
 * off; the first difference ends the matching for good. */
static size_t log_match(struct dlaunch *dl, const char *data, size_t len,
                        int64_t off)
{
	size_t done = 0, want, k;
	ssize_t n;

	while (dl->cmp_fd >= 0 && done < len) {
		want = len - done < sizeof(dl->cmp_buf) ? len - done
		                                        : sizeof(dl->cmp_buf);
		n = pread(dl->cmp_fd, dl->cmp_buf, want,
		          dl->cmp_base + off + (int64_t)done);
		for (k = 0;
		     n > 0 && k < (size_t)n && dl->cmp_buf[k] == data[done + k];
		     k++)
			;
		done += k;
		if (n <= 0 || k < want) {
			close(dl->cmp_fd);
			dl->cmp_fd = -1;
		}
	}
	return done;
}

/* One demultiplexed frame: drop what the log already has, pass the rest. */
static int on_frame(void *arg, int stream, const char *data, size_t len)
{
	struct dlaunch *dl = arg;
	size_t drop = 0;

	if (dl->seen < dl->skip)
		drop = dl->skip - dl->seen < (int64_t)len
		           ? (size_t)(dl->skip - dl->seen)
		           : len;
	if (drop < len && dl->cmp_fd >= 0)
		drop += log_match(dl, data + drop, len - drop,
		                  dl->seen + (int64_t)drop);
	dl->seen += (int64_t)len;
	return pipe_write(dl, data + drop, len - drop);
}

static int on_stream(void *arg, const char *data, size_t len)
{
	struct dlaunch *dl = arg;

	return docker_demux_feed(&dl->dm, data, len, on_frame, dl);
}

static bool container_running(struct dlaunch *dl)
{
	json_t *info = NULL;
	bool running = false;

	if (inspect(dl, dl->id, &info, NULL) == 0)
		running =
		    json_is_true(json_object_get(state_of(info), "Running"));
	json_decref(info);
	return running;
}

/* Follow the log stream to its end (the container exited), reconnecting
 * from the bytes already delivered if the engine drops the stream. */
static void follow_logs(struct dlaunch *dl)
{
	char *path = xasprintf("/containers/%s/logs?follow=1&stdout=1"
	                       "&stderr=1",
	                       dl->id);
	struct docker_req q = {.method = "GET",
	                       .path = path,
	                       .on_data = on_stream,
	                       .on_tick = dlaunch_sample,
	                       .arg = dl,
	                       .cancel = &dl->stop};
	pid_t init = dlaunch_pid(dl);
	struct err e = {0};
	int rc;

	if (init > 0 && dl->mem_dir == NULL) {
		dl->mem_dir = docker_cgroup_dir(init, dl->id, "memory");
		dl->cpu_dir = docker_cgroup_dir(init, dl->id, "cpuacct");
	}
	for (int tries = 0; tries < FOLLOW_RETRIES && !dl->stop; tries++) {
		docker_demux_init(&dl->dm);
		dl->seen = 0;
		rc = docker_request(dl->d, &q, NULL, NULL, &e);
		if (rc == 0 && !container_running(dl))
			break;
		if (rc < 0 && (rc == TERR_NOTFOUND || dl->stop))
			break;
		if (rc < 0)
			log_warn("container %.12s: log stream: %s (retrying)",
			         dl->id, e.msg);
		if (dl->seen > dl->skip)
			dl->skip = dl->seen;
		usleep(200000);
	}
	free(path);
}

static void *follower(void *arg)
{
	struct dlaunch *dl = arg;
	char *path = xasprintf("/containers/%s/wait", dl->id);
	struct docker_req q = {
	    .method = "POST", .path = path, .cancel = &dl->stop};
	sigset_t all;
	struct err e = {0};

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	follow_logs(dl);
	dl->last_sample_ms = 0; /* a last sample, if the cgroup still exists */
	dlaunch_sample(dl);
	if (dl->cmp_fd >= 0)
		close(dl->cmp_fd);
	dl->cmp_fd = -1;
	close(dl->out_w);
	dl->out_w = -1;
	while (!dl->stop && docker_request(dl->d, &q, NULL, NULL, &e) < 0 &&
	       e.code != TERR_NOTFOUND && !dl->stop) {
		log_warn("container %.12s: wait: %s (retrying)", dl->id, e.msg);
		sleep(1);
	}
	if (write(dl->done_w, "x", 1) < 0)
		log_warn("container %.12s: done pipe: %s", dl->id,
		         strerror(errno));
	close(dl->done_w);
	dl->done_w = -1;
	free(path);
	return NULL;
}

int dlaunch_follow(struct dlaunch *dl, int log_fd, int64_t log_start,
                   int *out_fd, int *done_fd, struct err *e)
{
	int op[2] = {-1, -1}, dp[2] = {-1, -1};

	if (pipe2(op, O_CLOEXEC) < 0 || pipe2(dp, O_CLOEXEC) < 0) {
		err_sys(e, TERR_IO, "pipe");
		goto fail;
	}
	fcntl(op[1], F_SETFL, O_NONBLOCK);
	dl->out_w = op[1];
	dl->done_w = dp[1];
	dl->skip = 0;
	dl->cmp_fd = log_fd;
	dl->cmp_base = log_start;
	dl->stop = 0;
	if (pthread_create(&dl->th, NULL, follower, dl) != 0) {
		err_set(e, TERR_FAIL, "docker launcher: pthread_create");
		goto fail;
	}
	dl->th_started = true;
	*out_fd = op[0];
	*done_fd = dp[0];
	return 0;
fail:
	if (log_fd >= 0)
		close(log_fd);
	dl->cmp_fd = -1;
	for (int i = 0; i < 2; i++) {
		if (op[i] >= 0)
			close(op[i]);
		if (dp[i] >= 0)
			close(dp[i]);
	}
	dl->out_w = dl->done_w = -1;
	return e->code;
}

/* Every process of the job gets sig exactly once: directly through the
 * container's cgroup (docker-init itself is left out, or it would forward
 * a second copy), else through the engine (to docker-init, which forwards
 * it to the job).  SIGKILL always goes through the engine. */
int dlaunch_signal(struct dlaunch *dl, int sig, struct err *e)
{
	pid_t init = sig == SIGKILL ? 0 : dlaunch_pid(dl);
	char *path;
	int rc;

	if (init > 0 && docker_cgroup_signal(init, dl->id, sig) > 0)
		return 0;
	path = xasprintf("/containers/%s/kill?signal=%d", dl->id, sig);
	rc = docker_call(dl->d, "POST", path, NULL, NULL, e);
	if (rc == TERR_CONFLICT) /* not running: nothing left to signal */
		rc = 0;
	free(path);
	return rc;
}

void dlaunch_join(struct dlaunch *dl)
{
	if (dl->th_started) {
		pthread_join(dl->th, NULL);
		dl->th_started = false;
	}
}

int dlaunch_exit(struct dlaunch *dl, struct launch_exit *ex, struct err *e)
{
	json_t *info = NULL, *st;
	int rc, code;

	if ((rc = inspect(dl, dl->id, &info, e)) < 0)
		return err_wrap(e, "collect container %.12s", dl->id);
	st = state_of(info);
	code = (int)json_integer_value(json_object_get(st, "ExitCode"));
	memset(ex, 0, sizeof(*ex));
	ex->oom = json_is_true(json_object_get(st, "OOMKilled"));
	ex->peak_memory_bytes = dl->peak_bytes > 0 ? dl->peak_bytes : -1;
	ex->cpu_seconds = dl->cpu_seconds > 0 ? dl->cpu_seconds : -1;
	ex->exit_code = code;
	if (code > 128 && code <= 128 + 64) { /* the engine's 128+signal */
		ex->exit_code = -1;
		ex->signal = code - 128;
	}
	json_decref(info);
	return 0;
}

void dlaunch_remove(struct dlaunch *dl)
{
	char *path;
	struct err e;
	int rc;

	if (dl->removed || dl->id[0] == '\0')
		return;
	path = xasprintf("/containers/%s?force=1", dl->id);
	rc = docker_call(dl->d, "DELETE", path, NULL, NULL, &e);
	if (rc < 0 && rc != TERR_NOTFOUND)
		log_warn("remove container %.12s: %s", dl->id, e.msg);
	else
		dl->removed = true;
	free(path);
}
