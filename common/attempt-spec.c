/* attempt-spec.c: the runner settings, spec.json and result.json of an
 * attempt directory: one writer (agent, runner for result.json), one reader
 * each, one set of defaults.  Formats: docs/state-dir.md. */
#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/json.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SETTING_STR_MAX 4096

void attempt_settings_init(struct attempt_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->state_dir = xstrdup(ATTEMPT_DEF_STATE_DIR);
	s->job_user = xstrdup(ATTEMPT_DEF_JOB_USER);
	s->cgroup_parent = xstrdup(ATTEMPT_DEF_CGROUP_PARENT);
	s->env_dir = xstrdup(ATTEMPT_DEF_ENV_DIR);
	s->default_python = xstrdup(ATTEMPT_DEF_PYTHON);
	s->docker_socket = xstrdup(ATTEMPT_DEF_DOCKER_SOCKET);
	s->launcher = xstrdup(ATTEMPT_DEF_LAUNCHER);
	s->kill_grace_ms = ATTEMPT_DEF_KILL_GRACE_MS;
	s->default_pids = ATTEMPT_DEF_PIDS;
	s->max_log_bytes = ATTEMPT_DEF_MAX_LOG;
	s->snapshot_max_bytes = ATTEMPT_DEF_SOURCE_MAX;
	s->snapshot_max_entries = ATTEMPT_DEF_SNAP_ENTRIES;
	s->source_max_bytes = ATTEMPT_DEF_SOURCE_MAX;
	s->disk_check_ms = ATTEMPT_DEF_DISK_CHECK_MS;
	s->slurm.poll_ms = ATTEMPT_DEF_SLURM_POLL_MS;
	s->spark.poll_ms = ATTEMPT_DEF_SPARK_POLL_MS;
}

void attempt_settings_free(struct attempt_settings *s)
{
	char **strs[] = {
	    &s->state_dir,         &s->job_user,       &s->cgroup_parent,
	    &s->env_dir,           &s->default_python, &s->docker_socket,
	    &s->conda_tool,        &s->launcher,       &s->agent_id,
	    &s->known_hosts,       &s->git_ca_file,    &s->slurm.partition,
	    &s->slurm.shared_dir,  &s->slurm.account,  &s->slurm.qos,
	    &s->spark.master,      &s->spark.ui,       &s->spark.home,
	    &s->spark.driver_host, &s->spark.yarn,     &s->spark.yarn_conf,
	    &s->node_address};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	for (size_t i = 0; i < s->nmounts; i++)
		free(s->mounts[i].source);
	free(s->mounts);
	free(s->gpus);
	memset(s, 0, sizeof(*s));
}

static json_t *settings_mounts(const struct attempt_settings *s)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < s->nmounts; i++)
		json_array_append_new(
		    arr, json_pack("{s:s, s:b}", "source", s->mounts[i].source,
		                   "readonly", s->mounts[i].readonly));
	return arr;
}

static json_t *settings_gpus(const struct attempt_settings *s)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < s->ngpus; i++)
		json_array_append_new(arr, json_integer(s->gpus[i]));
	return arr;
}

/* Key order as the agent has always written it (byte-compatible files). */
json_t *attempt_settings_json(const struct attempt_settings *s)
{
	json_t *o = json_pack(
	    "{s:s, s:s, s:f, s:I, s:s, s:o, s:s, s:s, s:s?, s:I, s:s, s:s, "
	    "s:o, s:{s:s?, s:s?, s:s?, s:s?, s:I}, s:I, s:s?, s:s?, s:b, s:s}",
	    "state_dir", s->state_dir, "job_user", s->job_user, "kill_grace",
	    (double)s->kill_grace_ms / 1000.0, "default_pids",
	    (json_int_t)s->default_pids, "cgroup_parent", s->cgroup_parent,
	    "allowed_mounts", settings_mounts(s), "env_dir", s->env_dir,
	    "default_python", s->default_python, "conda_tool", s->conda_tool,
	    "max_log_bytes", (json_int_t)s->max_log_bytes, "launcher",
	    s->launcher, "docker_socket", s->docker_socket, "gpus",
	    settings_gpus(s), "slurm", "partition", s->slurm.partition,
	    "shared_dir", s->slurm.shared_dir, "account", s->slurm.account,
	    "qos", s->slurm.qos, "poll_ms", (json_int_t)s->slurm.poll_ms,
	    "env_budget_bytes", (json_int_t)s->env_budget_bytes, "known_hosts",
	    s->known_hosts, "git_ca_file", s->git_ca_file,
	    "docker_readonly_rootfs", s->docker_readonly_rootfs, "agent_id",
	    s->agent_id ? s->agent_id : "");

	if (s->slurm.sstat) /* not an agent setting: written only when set */
		json_object_set_new(json_object_get(o, "slurm"), "sstat",
		                    json_true());
	json_object_set_new(o, "snapshot_max_bytes",
	                    json_integer(s->snapshot_max_bytes));
	json_object_set_new(o, "snapshot_max_entries",
	                    json_integer(s->snapshot_max_entries));
	json_object_set_new(o, "source_max_bytes",
	                    json_integer(s->source_max_bytes));
	json_object_set_new(o, "attempt_max_disk",
	                    json_integer(s->attempt_max_disk));
	json_object_set_new(o, "disk_check_ms", json_integer(s->disk_check_ms));
	if (s->node_address != NULL) /* a multi-node rank only */
		json_object_set_new(o, "node_address",
		                    json_string(s->node_address));
	/* written only when an agent sets it (files stay byte-compatible) */
	if (s->spark.master || s->spark.ui || s->spark.home ||
	    s->spark.driver_host || s->spark.yarn || s->spark.yarn_conf ||
	    s->spark.poll_ms != ATTEMPT_DEF_SPARK_POLL_MS)
		json_object_set_new(
		    o, "spark",
		    json_pack("{s:s?, s:s?, s:s?, s:s?, s:I, s:s?, s:s?}",
		              "master", s->spark.master, "ui", s->spark.ui,
		              "home", s->spark.home, "driver_host",
		              s->spark.driver_host, "poll_ms",
		              (json_int_t)s->spark.poll_ms, "yarn",
		              s->spark.yarn, "yarn_conf", s->spark.yarn_conf));
	return o;
}

/* The strict string settings: null or missing keeps the default. */
static int parse_strs(json_t *o, struct attempt_settings *s, struct err *e)
{
	struct {
		const char *key;
		char **dst;
	} keys[] = {
	    {"state_dir", &s->state_dir},
	    {"job_user", &s->job_user},
	    {"cgroup_parent", &s->cgroup_parent},
	    {"env_dir", &s->env_dir},
	    {"default_python", &s->default_python},
	    {"docker_socket", &s->docker_socket},
	    {"conda_tool", &s->conda_tool},
	};
	const char *v;
	int rc;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = NULL;
		if (json_is_null(json_object_get(o, keys[i].key)))
			continue;
		if ((rc = json_get_str(o, "runner", keys[i].key, false,
		                       SETTING_STR_MAX, &v, e)) < 0)
			return rc;
		if (v != NULL) {
			free(*keys[i].dst);
			*keys[i].dst = xstrdup(v);
		}
	}
	return 0;
}

static int parse_launcher(json_t *o, struct attempt_settings *s, struct err *e)
{
	const char *name = ATTEMPT_DEF_LAUNCHER;
	int rc;

	if ((rc = json_get_str(o, "runner", "launcher", false, 32, &name, e)) <
	    0)
		return rc;
	for (int k = LAUNCHER_SANDBOX; k <= LAUNCHER_SPARK; k++)
		if (strcmp(name, jobspec_launcher_name(k)) == 0) {
			free(s->launcher);
			s->launcher = xstrdup(name);
			return 0;
		}
	return err_set(e, TERR_INVAL,
	               "runner.launcher: unknown launcher '%s' (sandbox, "
	               "docker, slurm or spark)",
	               name);
}

static int parse_limits(json_t *o, struct attempt_settings *s, struct err *e)
{
	double grace = (double)s->kill_grace_ms / 1000.0;
	int rc;

	if ((rc = json_get_num(o, "runner", "kill_grace", false, 0, 86400,
	                       &grace, e)) < 0 ||
	    (rc = json_get_int(o, "runner", "default_pids", false, 0, 1 << 22,
	                       &s->default_pids, e)) < 0 ||
	    (rc = json_get_int(o, "runner", "max_log_bytes", false, 0,
	                       INT64_MAX, &s->max_log_bytes, e)) < 0)
		return rc;
	s->kill_grace_ms = (int64_t)(grace * 1000);
	return 0;
}

/* A lenient count: a non-negative integer, else the default kept. */
static void opt_int(json_t *o, const char *key, int64_t *dst)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		*dst = json_integer_value(v);
}

/* A lenient string: a string, else NULL (nonempty: "" is NULL too). */
static char *opt_str(json_t *o, const char *key, bool nonempty)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || (nonempty && *json_string_value(v) == '\0'))
		return NULL;
	return xstrdup(json_string_value(v));
}

static void parse_lists(json_t *o, struct attempt_settings *s)
{
	json_t *list = json_object_get(o, "allowed_mounts"), *m;
	size_t i;

	s->mounts = xcalloc(json_array_size(list) + 1, sizeof(*s->mounts));
	json_array_foreach(list, i, m)
	{
		const char *src =
		    json_string_value(json_object_get(m, "source"));
		if (src == NULL)
			continue;
		s->mounts[s->nmounts].source = xstrdup(src);
		s->mounts[s->nmounts++].readonly =
		    !json_is_false(json_object_get(m, "readonly"));
	}
	list = json_object_get(o, "gpus");
	s->gpus = xcalloc(json_array_size(list) + 1, sizeof(*s->gpus));
	json_array_foreach(list, i, m)
	{
		if (json_is_integer(m))
			s->gpus[s->ngpus++] = (int)json_integer_value(m);
	}
}

/* The "spark" object (lenient, like "slurm"). */
static void parse_spark(json_t *o, struct attempt_settings *s)
{
	json_t *sp = json_object_get(o, "spark"), *v;

	if (!json_is_object(sp))
		return;
	s->spark.master = opt_str(sp, "master", true);
	s->spark.ui = opt_str(sp, "ui", true);
	s->spark.home = opt_str(sp, "home", true);
	s->spark.driver_host = opt_str(sp, "driver_host", true);
	s->spark.yarn = opt_str(sp, "yarn", true);
	s->spark.yarn_conf = opt_str(sp, "yarn_conf", true);
	v = json_object_get(sp, "poll_ms");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		s->spark.poll_ms = json_integer_value(v);
}

static void parse_optional(json_t *o, struct attempt_settings *s)
{
	json_t *sl = json_object_get(o, "slurm"), *v;

	parse_spark(o, s);

	opt_int(o, "snapshot_max_bytes", &s->snapshot_max_bytes);
	opt_int(o, "snapshot_max_entries", &s->snapshot_max_entries);
	opt_int(o, "source_max_bytes", &s->source_max_bytes);
	opt_int(o, "env_budget_bytes", &s->env_budget_bytes);
	opt_int(o, "attempt_max_disk", &s->attempt_max_disk);
	opt_int(o, "disk_check_ms", &s->disk_check_ms);
	s->known_hosts = opt_str(o, "known_hosts", false);
	s->git_ca_file = opt_str(o, "git_ca_file", false);
	s->agent_id = opt_str(o, "agent_id", false);
	s->node_address = opt_str(o, "node_address", true);
	s->docker_readonly_rootfs =
	    json_is_true(json_object_get(o, "docker_readonly_rootfs"));
	if (!json_is_object(sl))
		return;
	s->slurm.partition = opt_str(sl, "partition", true);
	s->slurm.shared_dir = opt_str(sl, "shared_dir", true);
	s->slurm.account = opt_str(sl, "account", true);
	s->slurm.qos = opt_str(sl, "qos", true);
	v = json_object_get(sl, "poll_ms");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		s->slurm.poll_ms = json_integer_value(v);
	s->slurm.sstat = json_is_true(json_object_get(sl, "sstat"));
}

int attempt_settings_parse(json_t *obj, struct attempt_settings *s,
                           struct err *e)
{
	json_t *o = obj != NULL ? obj : json_object();
	int rc;

	attempt_settings_init(s);
	if (!json_is_object(o)) {
		rc = err_set(e, TERR_INVAL, "runner: expected an object");
		goto out;
	}
	if ((rc = parse_strs(o, s, e)) < 0 ||
	    (rc = parse_launcher(o, s, e)) < 0 ||
	    (rc = parse_limits(o, s, e)) < 0)
		goto out;
	parse_lists(o, s);
	parse_optional(o, s);
out:
	if (obj == NULL)
		json_decref(o);
	return rc;
}

int attempt_spec_write(const char *dir, const char *job, int64_t attempt,
                       json_t *spec, const struct attempt_settings *s,
                       struct err *e)
{
	json_t *doc = json_pack("{s:s, s:I, s:O, s:o}", "job", job, "attempt",
	                        (json_int_t)attempt, "spec", spec, "runner",
	                        attempt_settings_json(s));
	char *path = attempt_path(dir, ATTEMPT_SPEC);
	char *text = json_dumps(doc, JSON_INDENT(1));
	int rc = file_replace(path, text, strlen(text), 0600, e);

	freezero_str(text); /* the spec holds the job's secrets */
	free(path);
	json_decref(doc);
	return rc;
}

/* Read and parse dir/name (at most max bytes) into *out. */
static int read_doc(const char *dir, const char *name, size_t max, json_t **out,
                    struct err *e)
{
	char *path = attempt_path(dir, name), *text = NULL;
	size_t len;
	int rc;

	if ((rc = file_read_all(path, max, &text, &len, e)) < 0 ||
	    (rc = json_parse(text, len, 32, out, e)) < 0)
		err_wrap(e, "%s", path);
	if (text != NULL)
		freezero_str(text);
	free(path);
	return rc;
}

int attempt_spec_read(const char *dir, json_t **out, struct err *e)
{
	return read_doc(dir, ATTEMPT_SPEC, ATTEMPT_SPEC_MAX, out, e);
}

int attempt_result_write(const char *dir, json_t *o, struct err *e)
{
	char *path = attempt_path(dir, ATTEMPT_RESULT);
	char *text = json_dump_record(o);
	int rc = file_write_atomic(path, text, strlen(text), 0600, e);

	free(text);
	free(path);
	return rc;
}

int attempt_result_read(const char *dir, json_t **out, struct err *e)
{
	return read_doc(dir, ATTEMPT_RESULT, ATTEMPT_RESULT_MAX, out, e);
}

bool attempt_result_exists(const char *dir)
{
	char *path = attempt_path(dir, ATTEMPT_RESULT);
	bool yes = access(path, F_OK) == 0;

	free(path);
	return yes;
}
