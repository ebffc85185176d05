/* supervisor.c: one attempt from spec.json to result.json.
 *
 * Phases source -> env -> run -> outputs, each reported as start/end
 * events; the final event and result.json carry the reason, exit, usage,
 * durations and the outputs list.  See docs/state-dir.md. */
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/env/env.h"
#include "runner/logpipe.h"
#include "runner/outputs.h"
#include "runner/split.h"
#include "runner/source/source.h"
#include "runner/supervisor/supervisor.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct final {
	const char *reason;
	struct launch_exit ex;
	double durations[4]; /* source, env, run, outputs; -1 not run */
	char message[ERR_MSG_MAX];
	json_t *outputs, *refused;
	bool has_progress;
	double progress;
};

static const char *const phase_names[] = {"source", "env", "run", "outputs"};

int supervisor_load(struct runner *r, const char *dir, bool need_job,
                    struct err *e)
{
	char *path = attempt_path(dir, ATTEMPT_SPEC);
	json_t *root = NULL, *spec;
	const char *job = NULL;
	int rc;

	r->dir = xstrdup(dir);
	attempt_settings_init(&r->set);
	if ((rc = attempt_spec_read(dir, &root, e)) < 0)
		goto read_failed;
	if ((rc = json_get_str(root, "", "job", need_job, 64, &job, e)) < 0 ||
	    (rc = json_get_int(root, "", "attempt", need_job, 1, INT32_MAX,
	                       &r->attempt, e)) < 0)
		goto out;
	if (job == NULL)
		job = "prebuild"; /* envs build of a queued job */
	if (!path_is_safe_relative(job) || strchr(job, '/') != NULL) {
		rc = err_set(e, TERR_INVAL, "job: not a valid job id");
		goto out;
	}
	r->job_id = xstrdup(job);
	spec = json_object_get(root, "spec");
	if (!json_is_object(spec)) {
		rc = err_set(e, TERR_INVAL, "spec: expected an object");
		goto out;
	}
	if ((rc = jobspec_parse_json(spec, &r->spec, e)) < 0) {
		err_wrap(e, "spec");
		goto out;
	}
	attempt_settings_free(&r->set);
	if ((rc = attempt_settings_parse(json_object_get(root, "runner"),
	                                 &r->set, e)) < 0)
		goto out;
	rc = runner_settings_load(r, e);
out:
	if (rc < 0)
		err_wrap(e, "%s", path);
read_failed: /* attempt_spec_read named the file */
	json_decref(root);
	free(path);
	return rc;
}

static int make_job_dirs(struct runner *r, struct err *e)
{
	char *dirs[] = {r->work_dir, r->outputs_dir, r->checkpoints_dir};
	int rc;

	for (size_t i = 0; i < 3; i++) {
		if ((rc = mkdir_p(dirs[i], 0700, e)) < 0)
			return rc;
		if (chown(dirs[i], r->uid, r->gid) < 0)
			return err_sys(e, TERR_IO, "chown %s", dirs[i]);
	}
	return 0;
}

/* Resolve the job user (the sandbox and the job dirs need it). */
static int resolve_user(struct runner *r, struct err *e)
{
	struct passwd *pw = getpwnam(r->set.job_user);

	if (pw == NULL)
		return err_set(e, TERR_NOTFOUND,
		               "job user '%s' does not exist (create it: "
		               "useradd --system %s, or set job_user)",
		               r->set.job_user, r->set.job_user);
	r->uid = pw->pw_uid;
	r->gid = pw->pw_gid;
	return 0;
}

static void final_init(struct final *f)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 4; i++)
		f->durations[i] = -1;
	f->ex.exit_code = -1;
	f->ex.peak_memory_bytes = -1;
	f->ex.cpu_seconds = -1;
}

static json_t *final_event(const struct final *f)
{
	json_t *ev =
	    json_pack("{s:s, s:s}", "type", "final", "reason", f->reason);
	json_t *d = json_object();

	json_object_set_new(ev, "exit_code",
	                    f->ex.exit_code >= 0 ? json_integer(f->ex.exit_code)
	                                         : json_null());
	json_object_set_new(ev, "signal",
	                    f->ex.signal > 0 ? json_integer(f->ex.signal)
	                                     : json_null());
	json_object_set_new(ev, "peak_memory_bytes",
	                    f->ex.peak_memory_bytes >= 0
	                        ? json_integer(f->ex.peak_memory_bytes)
	                        : json_null());
	json_object_set_new(ev, "cpu_seconds",
	                    f->ex.cpu_seconds >= 0
	                        ? json_real(f->ex.cpu_seconds)
	                        : json_null());
	for (int i = 0; i < 4; i++)
		json_object_set_new(
		    d, phase_names[i],
		    json_real(f->durations[i] < 0 ? 0 : f->durations[i]));
	json_object_set_new(ev, "durations", d);
	json_object_set_new(ev, "message",
	                    f->message[0] ? json_string(f->message)
	                                  : json_null());
	json_object_set_new(ev, "progress",
	                    f->has_progress ? json_real(f->progress)
	                                    : json_null());
	return ev;
}

/* Final event, then result.json (its presence means: done). */
static int write_final(struct runner *r, struct final *f, struct err *e)
{
	json_t *ev = final_event(f), *res;
	struct err fe = {0};
	int rc;

	/* The log, then the final event, then result.json reach the disk in
	 * this order: a result that survived a power loss has its log and
	 * events with it (docs/recovery.md, "Durability"). */
	if (r->job_log != NULL) /* held-back bytes of the masker first */
		logpipe_finish(r->job_log, &fe);
	if (r->aux_log != NULL)
		logpipe_finish(r->aux_log, &fe);
	if (r->log_fd >= 0)
		fdatasync(r->log_fd);
	if ((rc = runner_event(r, ev, e)) < 0)
		goto out;
	fdatasync(r->events_fd);
	res = json_deep_copy(ev);
	json_object_set_new(res, "outputs",
	                    f->outputs ? json_incref(f->outputs)
	                               : json_array());
	json_object_set_new(res, "refused",
	                    f->refused ? json_incref(f->refused)
	                               : json_array());
	json_object_set_new(res, "job", json_string(r->job_id));
	json_object_set_new(res, "attempt", json_integer(r->attempt));
	rc = attempt_result_write(r->dir, res, e);
	json_decref(res);
out:
	json_decref(ev);
	return rc;
}

/* Run one phase function with its start/end events; returns its rc. */
static int phase(struct runner *r, int idx, struct final *f,
                 int (*fn)(struct runner *, struct err *), struct err *e)
{
	int64_t t0 = now_mono_ms();
	int rc;

	/* state.json keeps phase "source", written at the start: for a
	 * runner that finds it after a crash, the source and env phases are
	 * alike (start the attempt afresh), so they need no rewrite (the
	 * events report the phases). */
	runner_phase_event(r, phase_names[idx], "start", -1, NULL);
	rc = fn(r, e);
	f->durations[idx] = (double)(now_mono_ms() - t0) / 1000.0;
	runner_phase_event(r, phase_names[idx], "end", f->durations[idx], NULL);
	return rc;
}

static const char *fenced(struct runner *r)
{
	struct fence fc;

	fence_init(&fc);
	fc.timeout_deadline_ms = runner_timeout_deadline(r);
	fence_reload(&fc, r->dir);
	return fence_check(&fc, now_mono_ms());
}

static int phase_run(struct runner *r, struct final *f, struct err *e)
{
	const char *stop = NULL;
	int64_t t0 = r->reattach ? r->run_started_ms : now_mono_ms();
	int rc;

	runner_set_phase(r, "run");
	if (!r->reattach) /* else the earlier runner sent it */
		runner_phase_event(r, "run", "start", -1, NULL);
	if (!r->reattach && ((rc = runner_build_job(r, e)) < 0 ||
	                     (rc = r->ops->prepare(r, e)) < 0)) {
		f->reason = "launch_failed";
		goto out;
	}
	rc = supervisor_run_job(r, &f->ex, &stop, e);
	if (rc < 0) /* a job we cannot follow again is lost */
		f->reason = r->reattach ? "lost" : "launch_failed";
	else if (stop != NULL)
		f->reason = stop;
	else if (f->ex.exit_code == 0 && f->ex.signal == 0 && !f->ex.reason)
		f->reason = "succeeded"; /* even if a child was OOM-killed */
	else if (f->ex.oom)
		f->reason = "oom";
	else if (f->ex.reason != NULL)
		f->reason = f->ex.reason;
	else
		f->reason = "failed";
out:
	f->durations[2] = (double)(now_mono_ms() - t0) / 1000.0;
	runner_phase_event(r, "run", "end", f->durations[2], NULL);
	return rc;
}

static int phase_outputs(struct runner *r, struct final *f, struct err *e)
{
	int64_t t0 = now_mono_ms();
	int rc;

	/* state.json keeps phase "run" (the events report this phase): a
	 * re-attaching runner treats both alike, and a rewrite carrying the
	 * job's record would be synced (runner_state_durable) for nothing. */
	runner_phase_event(r, "outputs", "start", -1, NULL);
	rc = outputs_list(r->outputs_dir, &f->outputs, &f->refused, e);
	for (size_t i = 0; rc == 0 && i < json_array_size(f->refused); i++) {
		json_t *o = json_array_get(f->refused, i);
		runner_logf(r, "tether", "output refused: %s (%s)",
		            json_string_value(json_object_get(o, "path")),
		            json_string_value(json_object_get(o, "why")));
	}
	f->durations[3] = (double)(now_mono_ms() - t0) / 1000.0;
	runner_phase_event(r, "outputs", "end", f->durations[3], NULL);
	return rc;
}

/* The run phase, then outputs unless the job could not be run. */
static void run_and_outputs(struct runner *r, struct final *f, struct err *e)
{
	if (phase_run(r, f, e) < 0)
		return;
	if (phase_outputs(r, f, e) < 0 && strcmp(f->reason, "succeeded") == 0)
		f->reason = "outputs_failed";
}

/* Everything between loading the spec and the final event. */
static void run_phases(struct runner *r, struct final *f)
{
	struct err e = {0};
	const char *stop = NULL;

	if (resolve_user(r, &e) < 0 || runner_disk_budget(r, &e) < 0) {
		f->reason = "launch_failed";
	} else if (r->reattach) { /* no source/env: the job runs already */
		supervisor_reattach_times(r, f->durations);
		run_and_outputs(r, f, &e);
	} else if (make_job_dirs(r, &e) < 0 || supervisor_resume(r, &e) < 0) {
		f->reason = "launch_failed";
	} else if ((stop = fenced(r)) != NULL) {
		f->reason = stop;
	} else if (phase(r, 0, f, source_fetch, &e) < 0) {
		f->reason = fenced(r) ? fenced(r) : "source_failed";
	} else if ((stop = fenced(r)) != NULL) {
		f->reason = stop;
	} else if (phase(r, 1, f, env_prepare, &e) < 0) {
		f->reason = fenced(r) ? fenced(r) : "env_failed";
	} else if (runner_rendezvous(r, &stop, &e) < 0) {
		/* a multi-node rank's start barrier (rendezvous.c): before the
		 * run phase, so a runner restarted while it waits starts the
		 * attempt again instead of following a job never started */
		f->reason = "launch_failed";
	} else if (stop != NULL) {
		f->reason = stop; /* stopped at the barrier */
	} else {
		run_and_outputs(r, f, &e);
	}
	f->has_progress = r->has_progress;
	f->progress = r->progress;
	if (e.code < 0) {
		snprintf(f->message, sizeof(f->message), "%s", e.msg);
		runner_logf(r, "tether", "%s: %s", f->reason ? f->reason : "",
		            e.msg);
	}
	if (f->reason == NULL)
		f->reason = "failed";
}

/* One runner per attempt: an exclusive flock on spec.json, held (fd left
 * open, close-on-exec) until the runner exits. */
static int lock_attempt(const char *dir)
{
	char *path = attempt_path(dir, ATTEMPT_SPEC);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		log_error_errno("%s", path);
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("%s: another runner works on this attempt", dir);
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

static void load_failed(struct runner *r, struct final *f, struct err *e)
{
	if (r->job_id == NULL)
		r->job_id = xstrdup("?");
	f->reason = "launch_failed";
	snprintf(f->message, sizeof(f->message), "%s", e->msg);
	runner_logf(r, "tether", "launch_failed: %s", e->msg);
	err_clear(e);
}

/* Replace this tether-runner with tether-runner-full for r (split.h):
 * before anything is written, so it starts the attempt as if first. */
static int hand_over(struct runner *r, const char *dir, struct err *e)
{
	char *argv[] = {"tether-runner-full", "run", (char *)dir, NULL};

	log_debug("job=%s: %s: tether-runner-full runs it", r->job_id,
	          runner_needs_full(r));
	runner_exec_full(argv, e);
	r->ops = NULL; /* the placeholders of split-lite.c do nothing */
	return err_wrap(e, "%s", runner_needs_full(r));
}

int supervisor_run(const char *dir)
{
	struct runner r = {.log_fd = -1, .events_fd = -1, .idle_watch_fd = -1};
	struct final f;
	struct err e = {0};
	sigset_t set;
	int rc;

	final_init(&f);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN); /* outlives a closed terminal or session */
	/* Cancel (SIGUSR1) and stop requests arrive through a signalfd. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (attempt_result_exists(dir)) {
		log_info("%s: already finished (result.json exists)", dir);
		return 0;
	}
	r.state.runner_pid = getpid();
	r.state.runner_start = proc_start_time(getpid());
	snprintf(r.state.phase, sizeof(r.state.phase), "source");
	if (lock_attempt(dir) < 0)
		return 1;
	supervisor_reattach_check(&r, dir); /* before state.json is rewritten */
	rc = supervisor_load(&r, dir, true, &e);
	if (rc == 0 && !runner_is_full && runner_needs_full(&r) != NULL)
		rc = hand_over(&r, dir, &e); /* returns only on failure */
	if (r.dir == NULL ||
	    attempt_state_write(r.dir, &r.state, runner_state_durable(&r), &e) <
	        0 ||
	    runner_open_files(&r, &e) < 0) {
		log_error("%s: %s", dir, e.msg);
		runner_free(&r);
		return 1;
	}
	if (rc < 0) /* a spec we cannot run: say so in the result */
		load_failed(&r, &f, &e);
	else
		run_phases(&r, &f);
	if (r.ops != NULL)
		r.ops->cleanup(&r);
	rc = write_final(&r, &f, &e);
	if (rc < 0)
		log_error("job=%s result: %s", r.job_id, e.msg);
	runner_set_phase(&r, "done");
	log_info("job=%s attempt=%lld finished: %s", r.job_id,
	         (long long)r.attempt, f.reason);
	json_decref(f.outputs);
	json_decref(f.refused);
	runner_close_files(&r);
	runner_free(&r);
	return rc < 0 ? 1 : 0;
}
