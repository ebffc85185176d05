#include "common/jobspec.h"
#include "common/err.h"
#include "common/json.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME  128
#define MAX_ARG   65536
#define MAX_ARGS  1024
#define MAX_PATH  4096
#define MAX_VARS  1024
#define MAX_VALUE 65536
#define MAX_DEPTH 16

static const char *const top_keys[] = {"name",         "command",
                                       "source",       "environment",
                                       "resources",    "env",
                                       "secrets",      "timeout",
                                       "hang_timeout", "retries",
                                       "priority",     "placement",
                                       "launcher",     "network",
                                       "mounts",       "workdir",
                                       "checkpoint",   "slurm",
                                       "spark",        "metrics",
                                       "nodes",        "processes_per_node",
                                       "outputs_from", NULL};

bool path_is_safe_relative(const char *p)
{
	const char *c = p;

	if (p == NULL || *p == '\0' || *p == '/' || strlen(p) > MAX_PATH)
		return false;
	while (*c != '\0') {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
				return false;
		c += n;
		if (*c == '/')
			c++;
	}
	return true;
}

static bool path_is_safe_absolute(const char *p)
{
	return p != NULL && p[0] == '/' &&
	       (p[1] == '\0' || path_is_safe_relative(p + 1));
}

static bool env_name_valid(const char *k)
{
	if (!(isascii((unsigned char)k[0]) &&
	      (isalpha((unsigned char)k[0]) || k[0] == '_')))
		return false;
	for (const char *p = k; *p; p++)
		if (!isascii((unsigned char)*p) ||
		    !(isalnum((unsigned char)*p) || *p == '_'))
			return false;
	return strlen(k) <= 256;
}

#define NAME_RULE                                                              \
	"letters, digits and _, not starting with a digit, at most 256 bytes"

/* A field that names a secret: a variable name, when given. */
static int check_secret_name(const char *field, const char *v, struct err *e)
{
	char shown[128];

	if (v == NULL || env_name_valid(v))
		return 0;
	return err_set(e, TERR_INVAL,
	               "%s: '%s' is not a valid secret name (%s)", field,
	               str_escape(v, shown, sizeof(shown)), NAME_RULE);
}

static const char *const conda_tools[] = {"micromamba", "mamba", "conda", NULL};
static const char *const checkpoint_signals[] = {"TERM", "USR1", "USR2", "INT",
                                                 NULL};

/* s is one of the NULL-terminated words. */
static bool one_of(const char *s, const char *const *words)
{
	for (; *words != NULL; words++)
		if (strcmp(s, *words) == 0)
			return true;
	return false;
}

static bool no_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* A name others see (logs, sbatch scripts, tables): no control
 * characters, when given. */
static int check_printable(const char *field, const char *v, struct err *e)
{
	if (v == NULL || no_control(v))
		return 0;
	return err_set(e, TERR_INVAL, "%s: control characters are not allowed",
	               field);
}

/* Read a NULL-terminated array of strings. */
static int get_strv(json_t *obj, const char *where, const char *key, size_t min,
                    size_t max_items, size_t max_len, const char ***out,
                    size_t *count, struct err *e)
{
	json_t *a = json_object_get(obj, key), *v;
	const char **list;
	size_t i;

	if (a == NULL || json_is_null(a)) {
		if (min > 0)
			return err_set(e, TERR_INVAL,
			               "%s%s%s: required field is"
			               " missing",
			               where, *where ? "." : "", key);
		return 0;
	}
	if (!json_is_array(a) || json_array_size(a) < min ||
	    json_array_size(a) > max_items)
		return err_set(e, TERR_INVAL,
		               "%s%s%s: expected a list of %zu "
		               "to %zu strings",
		               where, *where ? "." : "", key, min, max_items);
	list = xcalloc(json_array_size(a) + 1, sizeof(*list));
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) > max_len ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			free(list);
			return err_set(e, TERR_INVAL,
			               "%s%s%s[%zu]: expected a "
			               "string of at most %zu bytes",
			               where, *where ? "." : "", key, i,
			               max_len);
		}
		list[i] = json_string_value(v);
	}
	*out = list;
	if (count != NULL)
		*count = json_array_size(a);
	return 0;
}

/* Duration as a number of seconds or a string like "90m". */
static int get_duration(json_t *obj, const char *where, const char *key,
                        int64_t *out, struct err *e)
{
	json_t *v = json_object_get(obj, key);
	char field[64];

	snprintf(field, sizeof(field), "%s%s%s", where, *where ? "." : "", key);
	key = field;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_number(v)) {
		double d = json_number_value(v);
		if (d < 0 || d > 1e9)
			return err_set(e, TERR_INVAL, "%s: out of range", key);
		*out = (int64_t)(d * 1000);
		return 0;
	}
	if (json_is_string(v)) {
		if (parse_duration_ms(json_string_value(v), out, e) < 0)
			return err_wrap(e, "%s", key);
		return 0;
	}
	return err_set(e, TERR_INVAL,
	               "%s: expected seconds or a duration "
	               "such as \"90m\"",
	               key);
}

static int parse_kv(json_t *root, const char *key, bool secret,
                    struct jobspec_kv **out, size_t *n, struct err *e)
{
	json_t *obj = json_object_get(root, key), *v;
	const char *k;
	size_t i = 0;

	if (obj == NULL || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return err_set(e, TERR_INVAL,
		               "%s: expected an object of "
		               "NAME: \"value\"",
		               key);
	if (json_object_size(obj) > MAX_VARS)
		return err_set(e, TERR_INVAL, "%s: more than %d entries", key,
		               MAX_VARS);
	*out = xcalloc(json_object_size(obj) + 1, sizeof(**out));
	json_object_foreach(obj, k, v)
	{
		if (!env_name_valid(k)) {
			char field[ERR_FIELD_MAX], shown[128];
			snprintf(field, sizeof(field), "%s.%s", key, k);
			return err_set_field(
			    e, TERR_INVAL, field,
			    "%s: '%s' is not a valid variable name (%s)", key,
			    str_escape(k, shown, sizeof(shown)), NAME_RULE);
		}
		if (!secret && strncmp(k, "TETHER_", 7) == 0)
			return err_set(e, TERR_INVAL,
			               "%s.%s: TETHER_ names are"
			               " reserved",
			               key, k);
		if (!json_is_string(v) || json_string_length(v) > MAX_VALUE ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return err_set(e, TERR_INVAL,
			               "%s.%s: expected a string"
			               " of at most %d bytes",
			               key, k, MAX_VALUE);
		if (secret && json_string_length(v) < 4)
			return err_set(e, TERR_INVAL,
			               "%s.%s: secret values "
			               "must be at least 4 bytes",
			               key, k);
		(*out)[i].key = k;
		(*out)[i].value = json_string_value(v);
		i++;
	}
	*n = i;
	return 0;
}

static int parse_source(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const keys[] = {"git", "snapshot", "path", NULL};
	static const char *const git_keys[] = {
	    "url",        "commit", "ref", "token_secret", "ssh_key_secret",
	    "submodules", NULL};
	json_t *src = json_object_get(root, "source"), *git;
	int r;

	if (src == NULL || json_is_null(src))
		return 0;
	if ((r = json_check_keys(src, "source", keys, e)) < 0)
		return r;
	if (json_object_size(src) != 1)
		return err_set(e, TERR_INVAL,
		               "source: give exactly one of git,"
		               " snapshot or path");
	if ((git = json_object_get(src, "git")) != NULL) {
		s->source.kind = SOURCE_GIT;
		if ((r = json_check_keys(git, "source.git", git_keys, e)) < 0 ||
		    (r = json_get_str(git, "source.git", "url", true, MAX_PATH,
		                      &s->source.url, e)) < 0 ||
		    (r = json_get_str(git, "source.git", "commit", false, 64,
		                      &s->source.commit, e)) < 0 ||
		    (r = json_get_str(git, "source.git", "ref", false, 256,
		                      &s->source.ref, e)) < 0 ||
		    (r = json_get_str(git, "source.git", "token_secret", false,
		                      256, &s->source.token_secret, e)) < 0 ||
		    (r = json_get_str(git, "source.git", "ssh_key_secret",
		                      false, 256, &s->source.ssh_key_secret,
		                      e)) < 0 ||
		    (r = json_get_bool(git, "source.git", "submodules", false,
		                       &s->source.submodules, e)) < 0 ||
		    (r = check_secret_name("source.git.token_secret",
		                           s->source.token_secret, e)) < 0 ||
		    (r = check_secret_name("source.git.ssh_key_secret",
		                           s->source.ssh_key_secret, e)) < 0)
			return r;
		if (s->source.url[0] == '-' || !no_control(s->source.url))
			return err_set(e, TERR_INVAL,
			               "source.git.url: not a "
			               "valid URL or path");
		if (s->source.commit != NULL) {
			size_t n = strlen(s->source.commit);
			if (n < 7 ||
			    strspn(s->source.commit, "0123456789abcdef") != n)
				return err_set(
				    e, TERR_INVAL,
				    "source.git.commit:"
				    " expected 7 to 64 lowercase hex "
				    "digits");
		}
		if (s->source.ref != NULL &&
		    (s->source.ref[0] == '-' || !no_control(s->source.ref) ||
		     strstr(s->source.ref, "..") != NULL ||
		     strpbrk(s->source.ref, " ~^:?*[\\") != NULL))
			return err_set(e, TERR_INVAL,
			               "source.git.ref: not a "
			               "valid git ref name");
		return 0;
	}
	if (json_object_get(src, "snapshot") != NULL) {
		s->source.kind = SOURCE_SNAPSHOT;
		if ((r = json_get_str(src, "source", "snapshot", true, 64,
		                      &s->source.snapshot, e)) < 0)
			return r;
		if (strlen(s->source.snapshot) != 64 ||
		    strspn(s->source.snapshot, "0123456789abcdef") != 64)
			return err_set(e, TERR_INVAL,
			               "source.snapshot: expected"
			               " a sha256 snapshot id");
		return 0;
	}
	s->source.kind = SOURCE_PATH;
	if ((r = json_get_str(src, "source", "path", true, MAX_PATH,
	                      &s->source.path, e)) < 0)
		return r;
	if (!path_is_safe_absolute(s->source.path))
		return err_set(e, TERR_INVAL,
		               "source.path: expected an absolute"
		               " normalised path");
	return 0;
}

static int parse_env_kind(const char *kind, struct jobspec *s, struct err *e)
{
	static const char *const names[] = {"none", "venv", "conda", "docker"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(kind, names[i]) == 0) {
			s->env.kind = (enum env_kind)i;
			return 0;
		}
	}
	return err_set(e, TERR_INVAL,
	               "environment.kind: '%s' is not one of "
	               "none, venv, conda, docker",
	               kind);
}

static int check_rel(const char *field, const char *p, struct err *e)
{
	if (p != NULL && !path_is_safe_relative(p))
		return err_set(e, TERR_INVAL,
		               "%s: expected a relative path "
		               "inside the source, without '..'",
		               field);
	return 0;
}

static int parse_environment(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const keys[] = {"kind",
	                                   "python",
	                                   "system_site_packages",
	                                   "requirements_file",
	                                   "requirements",
	                                   "pip_options",
	                                   "file",
	                                   "inline",
	                                   "tool",
	                                   "image",
	                                   "dockerfile",
	                                   "registry_secret",
	                                   NULL};
	const char *w = "environment", *kind = "none";
	json_t *env = json_object_get(root, "environment");
	int r;

	if (env == NULL || json_is_null(env))
		return 0;
	if ((r = json_check_keys(env, w, keys, e)) < 0 ||
	    (r = json_get_str(env, w, "kind", true, 16, &kind, e)) < 0 ||
	    (r = parse_env_kind(kind, s, e)) < 0 ||
	    (r = json_get_str(env, w, "python", false, MAX_PATH, &s->env.python,
	                      e)) < 0 ||
	    (r = json_get_bool(env, w, "system_site_packages", false,
	                       &s->env.system_site_packages, e)) < 0 ||
	    (r = json_get_str(env, w, "requirements_file", false, MAX_PATH,
	                      &s->env.requirements_file, e)) < 0 ||
	    (r = get_strv(env, w, "requirements", 0, 1024, 1024,
	                  &s->env.requirements, NULL, e)) < 0 ||
	    (r = get_strv(env, w, "pip_options", 0, 64, MAX_PATH,
	                  &s->env.pip_options, NULL, e)) < 0 ||
	    (r = json_get_str(env, w, "file", false, MAX_PATH,
	                      &s->env.conda_file, e)) < 0 ||
	    (r = json_get_str(env, w, "inline", false, 1 << 20,
	                      &s->env.conda_inline, e)) < 0 ||
	    (r = json_get_str(env, w, "tool", false, 16, &s->env.conda_tool,
	                      e)) < 0 ||
	    (r = json_get_str(env, w, "image", false, 512, &s->env.image, e)) <
	        0 ||
	    (r = json_get_str(env, w, "dockerfile", false, MAX_PATH,
	                      &s->env.dockerfile, e)) < 0 ||
	    (r = json_get_str(env, w, "registry_secret", false, 256,
	                      &s->env.registry_secret, e)) < 0 ||
	    (r = check_secret_name("environment.registry_secret",
	                           s->env.registry_secret, e)) < 0 ||
	    (r = check_rel("environment.requirements_file",
	                   s->env.requirements_file, e)) < 0 ||
	    (r = check_rel("environment.file", s->env.conda_file, e)) < 0 ||
	    (r = check_rel("environment.dockerfile", s->env.dockerfile, e)) < 0)
		return r;
	if (s->env.python != NULL && !path_is_safe_absolute(s->env.python))
		return err_set(e, TERR_INVAL,
		               "environment.python: expected an "
		               "absolute path to an interpreter");
	if (s->env.conda_tool != NULL &&
	    !one_of(s->env.conda_tool, conda_tools))
		return err_set(e, TERR_INVAL,
		               "environment.tool: expected "
		               "micromamba, mamba or conda");
	for (size_t i = 0; s->env.pip_options && s->env.pip_options[i]; i++)
		if (!no_control(s->env.pip_options[i]))
			return err_set(e, TERR_INVAL,
			               "environment.pip_options[%zu]"
			               ": control characters",
			               i);
	if (s->env.kind == ENV_CONDA && !s->env.conda_file &&
	    !s->env.conda_inline)
		return err_set(e, TERR_INVAL,
		               "environment: conda needs 'file' "
		               "or 'inline'");
	if (s->env.kind == ENV_DOCKER && !s->env.image && !s->env.dockerfile)
		return err_set(e, TERR_INVAL,
		               "environment: docker needs 'image'"
		               " or 'dockerfile'");
	if (s->env.image != NULL &&
	    (s->env.image[0] == '-' ||
	     strspn(s->env.image, "abcdefghijklmnopqrstuvwxyz"
	                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	                          "._-/:@") != strlen(s->env.image)))
		return err_set(e, TERR_INVAL,
		               "environment.image: not a valid "
		               "image reference");
	return 0;
}

static int parse_resources(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const keys[] = {"cpus", "memory", "gpus",
	                                   "pids", "disk",   NULL};
	json_t *res = json_object_get(root, "resources"), *mem;
	int r;

	if (res == NULL || json_is_null(res))
		return 0;
	if ((r = json_check_keys(res, "resources", keys, e)) < 0 ||
	    (r = json_get_num(res, "resources", "cpus", false, 0, 4096,
	                      &s->resources.cpus, e)) < 0 ||
	    (r = json_get_int(res, "resources", "gpus", false, 0, 64,
	                      &s->resources.gpus, e)) < 0 ||
	    (r = json_get_int(res, "resources", "pids", false, 0, 4194304,
	                      &s->resources.pids, e)) < 0)
		return r;
	mem = json_object_get(res, "memory");
	if (mem == NULL || json_is_null(mem))
		return 0;
	if (json_is_integer(mem) && json_integer_value(mem) >= 0)
		s->resources.memory = json_integer_value(mem);
	else if (json_is_string(mem)) {
		if (parse_size(json_string_value(mem), &s->resources.memory,
		               e) < 0)
			return err_wrap(e, "resources.memory");
	} else
		return err_set(e, TERR_INVAL,
		               "resources.memory: expected bytes"
		               " or a size such as \"2G\"");
	if (s->resources.memory != 0 && s->resources.memory < (4 << 20))
		return err_set(e, TERR_INVAL, "resources.memory: at least 4M");
	return 0;
}

/* resources.disk: bytes or a size ("10G"), at least 1M. */
static int parse_disk(json_t *root, struct jobspec *s, struct err *e)
{
	json_t *d = json_object_get(json_object_get(root, "resources"), "disk");

	if (d == NULL || json_is_null(d))
		return 0;
	if (json_is_integer(d) && json_integer_value(d) >= 0)
		s->resources.disk = json_integer_value(d);
	else if (!json_is_string(d) ||
	         parse_size(json_string_value(d), &s->resources.disk, e) < 0)
		return err_set(e, TERR_INVAL,
		               "resources.disk: expected bytes or a size such "
		               "as \"10G\"");
	if (s->resources.disk < (1 << 20))
		return err_set(e, TERR_INVAL, "resources.disk: at least 1M");
	return 0;
}

static int parse_mounts(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const keys[] = {"source", "target", "readonly",
	                                   NULL};
	json_t *a = json_object_get(root, "mounts"), *m;
	size_t i;
	int r;

	if (a == NULL || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 64)
		return err_set(e, TERR_INVAL,
		               "mounts: expected a list of at "
		               "most 64 mounts");
	s->mounts = xcalloc(json_array_size(a) + 1, sizeof(*s->mounts));
	json_array_foreach(a, i, m)
	{
		char w[32];
		struct jobspec_mount *mt = &s->mounts[i];
		snprintf(w, sizeof(w), "mounts[%zu]", i);
		mt->readonly = true;
		if ((r = json_check_keys(m, w, keys, e)) < 0 ||
		    (r = json_get_str(m, w, "source", true, MAX_PATH,
		                      &mt->source, e)) < 0 ||
		    (r = json_get_str(m, w, "target", false, MAX_PATH,
		                      &mt->target, e)) < 0 ||
		    (r = json_get_bool(m, w, "readonly", false, &mt->readonly,
		                       e)) < 0)
			return r;
		if (mt->target == NULL)
			mt->target = mt->source;
		if (!path_is_safe_absolute(mt->source) ||
		    !path_is_safe_absolute(mt->target) ||
		    strcmp(mt->target, "/") == 0)
			return err_set(e, TERR_INVAL,
			               "%s: source and target "
			               "must be absolute normalised paths",
			               w);
		if (strncmp(mt->target, "/tether", 7) == 0 ||
		    strncmp(mt->target, "/proc", 5) == 0 ||
		    strncmp(mt->target, "/dev", 4) == 0 ||
		    strncmp(mt->target, "/sys", 4) == 0)
			return err_set(e, TERR_INVAL,
			               "%s.target: %s is "
			               "reserved",
			               w, mt->target);
	}
	s->nmounts = json_array_size(a);
	return 0;
}

static int parse_enum(json_t *root, const char *key, const char *const *names,
                      int n, int *out, struct err *e)
{
	const char *v = NULL;
	int r;

	if ((r = json_get_str(root, "", key, false, 32, &v, e)) < 0 ||
	    v == NULL)
		return r;
	for (int i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return err_set(e, TERR_INVAL, "%s: '%s' is not a known value", key, v);
}

static int parse_placement(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const keys[] = {"agent", "labels", NULL};
	json_t *p = json_object_get(root, "placement");
	int r;

	if (p == NULL || json_is_null(p))
		return 0;
	if ((r = json_check_keys(p, "placement", keys, e)) < 0 ||
	    (r = json_get_str(p, "placement", "agent", false, MAX_NAME,
	                      &s->placement_agent, e)) < 0 ||
	    (r = get_strv(p, "placement", "labels", 0, 64, MAX_NAME,
	                  &s->placement_labels, NULL, e)) < 0 ||
	    (r = check_printable("placement.agent", s->placement_agent, e)) < 0)
		return r;
	for (size_t i = 0; s->placement_labels && s->placement_labels[i]; i++) {
		char w[40];
		snprintf(w, sizeof(w), "placement.labels[%zu]", i);
		if ((r = check_printable(w, s->placement_labels[i], e)) < 0)
			return r;
	}
	return 0;
}

static int parse_checkpoint_slurm(json_t *root, struct jobspec *s,
                                  struct err *e)
{
	static const char *const ck[] = {"signal", "grace", "on_timeout",
	                                 "resume_from", NULL};
	static const char *const sk[] = {"partition", "account", "qos",
	                                 "nodes",     "ntasks",  NULL};
	json_t *c = json_object_get(root, "checkpoint");
	json_t *sl = json_object_get(root, "slurm");
	int r;

	s->checkpoint.signal = "TERM";
	if (c != NULL && !json_is_null(c)) {
		if ((r = json_check_keys(c, "checkpoint", ck, e)) < 0 ||
		    (r = json_get_str(c, "checkpoint", "signal", false, 8,
		                      &s->checkpoint.signal, e)) < 0 ||
		    (r = get_duration(c, "checkpoint", "grace",
		                      &s->checkpoint.grace_ms, e)) < 0 ||
		    (r = json_get_bool(c, "checkpoint", "on_timeout", false,
		                       &s->checkpoint.on_timeout, e)) < 0 ||
		    (r = json_get_int(c, "checkpoint", "resume_from", false, 1,
		                      INT64_MAX, &s->checkpoint.resume_from,
		                      e)) < 0)
			return r;
		if (!one_of(s->checkpoint.signal, checkpoint_signals))
			return err_set(e, TERR_INVAL,
			               "checkpoint.signal: "
			               "expected TERM, INT, USR1 or USR2");
	}
	if (sl == NULL || json_is_null(sl))
		return 0;
	if ((r = json_check_keys(sl, "slurm", sk, e)) < 0 ||
	    (r = json_get_str(sl, "slurm", "partition", false, MAX_NAME,
	                      &s->slurm.partition, e)) < 0 ||
	    (r = json_get_str(sl, "slurm", "account", false, MAX_NAME,
	                      &s->slurm.account, e)) < 0 ||
	    (r = json_get_str(sl, "slurm", "qos", false, MAX_NAME,
	                      &s->slurm.qos, e)) < 0 ||
	    (r = json_get_int(sl, "slurm", "nodes", false, 1, 100000,
	                      &s->slurm.nodes, e)) < 0 ||
	    (r = json_get_int(sl, "slurm", "ntasks", false, 1, 1000000,
	                      &s->slurm.ntasks, e)) < 0 ||
	    (r = check_printable("slurm.partition", s->slurm.partition, e)) <
	        0 ||
	    (r = check_printable("slurm.account", s->slurm.account, e)) < 0 ||
	    (r = check_printable("slurm.qos", s->slurm.qos, e)) < 0)
		return r;
	return 0;
}

static int jobspec_fill(json_t *root, struct jobspec *s, struct err *e)
{
	static const char *const launchers[] = {"default", "sandbox", "docker",
	                                        "slurm", "spark"};
	static const char *const nets[] = {"host", "none"};
	int r, li = 0, ni = 0;

	if ((r = json_check_keys(root, "", top_keys, e)) < 0 ||
	    (r = json_get_str(root, "", "name", true, MAX_NAME, &s->name, e)) <
	        0 ||
	    (r = get_strv(root, "", "command", 1, MAX_ARGS, MAX_ARG, &s->argv,
	                  &s->argc, e)) < 0 ||
	    (r = parse_source(root, s, e)) < 0 ||
	    (r = parse_environment(root, s, e)) < 0 ||
	    (r = parse_resources(root, s, e)) < 0 ||
	    (r = parse_disk(root, s, e)) < 0 ||
	    (r = parse_kv(root, "env", false, &s->env_vars, &s->nenv, e)) < 0 ||
	    (r = parse_kv(root, "secrets", true, &s->secrets, &s->nsecrets,
	                  e)) < 0 ||
	    (r = get_duration(root, "", "timeout", &s->timeout_ms, e)) < 0 ||
	    (r = get_duration(root, "", "hang_timeout", &s->hang_timeout_ms,
	                      e)) < 0 ||
	    (r = json_get_int(root, "", "retries", false, 0, 100, &s->retries,
	                      e)) < 0 ||
	    (r = json_get_int(root, "", "priority", false, -1000000, 1000000,
	                      &s->priority, e)) < 0 ||
	    (r = parse_placement(root, s, e)) < 0 ||
	    (r = parse_enum(root, "launcher", launchers, 5, &li, e)) < 0 ||
	    (r = parse_enum(root, "network", nets, 2, &ni, e)) < 0 ||
	    (r = parse_mounts(root, s, e)) < 0 ||
	    (r = json_get_str(root, "", "workdir", false, MAX_PATH, &s->workdir,
	                      e)) < 0 ||
	    (r = check_rel("workdir", s->workdir, e)) < 0 ||
	    (r = parse_checkpoint_slurm(root, s, e)) < 0 ||
	    (r = jobspec_parse_spark(root, s, e)) < 0 ||
	    (r = jobspec_parse_metrics(root, s, e)) < 0)
		return r;
	s->launcher = (enum launcher_kind)li;
	s->network = (enum network_mode)ni;
	if ((r = jobspec_parse_nodes(root, s, e)) < 0)
		return r;
	if (s->name[0] == '\0' || !no_control(s->name))
		return err_set(e, TERR_INVAL,
		               "name: must be 1 to %d printable "
		               "characters",
		               MAX_NAME);
	if (s->argv[0][0] == '\0')
		return err_set(e, TERR_INVAL, "command[0]: empty program name");
	return 0;
}

int jobspec_parse_json(json_t *root, struct jobspec **out, struct err *e)
{
	struct jobspec *s = xcalloc(1, sizeof(*s));
	int r;

	s->root = json_incref(root);
	if ((r = jobspec_fill(root, s, e)) < 0)
		goto out;
	*out = s;
	s = NULL;
out:
	jobspec_free(s);
	return r;
}

int jobspec_parse(const char *text, size_t len, struct jobspec **out,
                  struct err *e)
{
	json_t *root = NULL;
	int r;

	if ((r = json_parse(text, len, MAX_DEPTH, &root, e)) < 0)
		return r;
	r = jobspec_parse_json(root, out, e);
	json_decref(root);
	return r;
}

void jobspec_free(struct jobspec *s)
{
	if (s == NULL)
		return;
	free(s->argv);
	free(s->env.requirements);
	free(s->env.pip_options);
	free(s->env_vars);
	free(s->secrets);
	free(s->placement_labels);
	free(s->mounts);
	free(s->spark.conf);
	free(s->spark.py_files);
	free(s->spark.archives);
	json_decref(s->root);
	free(s);
}

const char *jobspec_launcher_name(enum launcher_kind k)
{
	static const char *const names[] = {"default", "sandbox", "docker",
	                                    "slurm", "spark"};
	return names[k];
}

const char *jobspec_env_name(enum env_kind k)
{
	static const char *const names[] = {"none", "venv", "conda", "docker"};
	return names[k];
}

const char *jobspec_secret(const struct jobspec *s, const char *name)
{
	for (size_t i = 0; i < s->nsecrets; i++)
		if (strcmp(s->secrets[i].key, name) == 0)
			return s->secrets[i].value;
	return NULL;
}
