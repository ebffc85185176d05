/* env-venv.c: the venv builder.
 *
 * `<python> -m venv [--system-site-packages] PREFIX`, then
 * `PREFIX/bin/python -m pip install <pip_options> [-r FILE] [reqs...]`
 * (the venv's own pip).  The interpreter is spec.environment.python, else
 * the runner setting default_python (/usr/bin/python3: the system's, not
 * whichever python3 is first on PATH).  Builders run with execv argv
 * arrays, never through a shell. */
#include "runner/env/env.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/jobfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VENV_ARGV_MAX 1200
#define TAIL_SIZE     2048

static const char *venv_python(struct runner *r)
{
	if (r->spec->env.python)
		return r->spec->env.python;
	return r->set.default_python ? r->set.default_python
	                             : ATTEMPT_DEF_PYTHON;
}

/* Run python to print its version (no log); out gets the first line.  The
 * interpreter is a path the job names: it runs like a build, in the
 * build's sandbox as the job user (env_run), never as root. */
static int venv_version_run(struct runner *r, const char *python, char *out,
                            size_t size, struct err *e)
{
	char *argv[] = {(char *)python, "-c",
	                "import sys, platform; print(sys.version.split()[0],"
	                " platform.machine())",
	                NULL};
	char text[256];
	int rc;

	if (access(python, X_OK) < 0)
		return err_sys(e, TERR_NOTFOUND, "interpreter %s", python);
	if ((rc = env_run_capture(r, argv, text, sizeof(text), e)) < 0)
		return err_wrap(e, "run %s", python);
	snprintf(out, size, "%.*s", (int)strcspn(text, "\n"), text);
	if (out[0] == '\0')
		return err_set(e, TERR_FAIL, "%s does not run", python);
	return 0;
}

/* <env_dir>/.python-versions/<sha256 of the interpreter's path and stat>:
 * the version line that interpreter printed.  A replaced or upgraded
 * interpreter has another inode, mtime or size, hence another file. */
static char *venv_version_path(const char *env_dir, const char *python)
{
	struct stat st;
	char *id, hex[SHA256_HEX_LEN + 1];

	if (env_dir == NULL || stat(python, &st) < 0 || !S_ISREG(st.st_mode))
		return NULL;
	id = xasprintf("%s\n%llu %llu %lld.%09ld %lld", python,
	               (unsigned long long)st.st_dev,
	               (unsigned long long)st.st_ino,
	               (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	               (long long)st.st_size);
	sha256_hex(id, strlen(id), hex);
	free(id);
	return xasprintf("%s/.python-versions/%s", env_dir, hex);
}

/* The interpreter's version for the cache key: from the stat-keyed file
 * when there is one, so a cache hit runs no interpreter
 * (docs/performance.md F4); else run it and remember the answer. */
static int venv_version(struct runner *r, const char *python, char *out,
                        size_t size, struct err *e)
{
	char *path = venv_version_path(r->set.env_dir, python), *text = NULL;
	struct err ignored = {0};
	int rc;

	if (path != NULL &&
	    file_read_all(path, size - 1, &text, NULL, &ignored) == 0 &&
	    text[0] != '\0' && strchr(text, '\n') == NULL &&
	    access(python, X_OK) == 0) {
		snprintf(out, size, "%s", text);
		rc = 0;
		goto out;
	}
	if ((rc = venv_version_run(r, python, out, size, e)) == 0 &&
	    path != NULL) {
		*strrchr(path, '/') = '\0';
		if (mkdir(path, 0755) == 0 || errno == EEXIST) {
			path[strlen(path)] = '/';
			file_write_atomic(path, out, strlen(out), 0644,
			                  &ignored);
		}
	}
out:
	free(text);
	free(path);
	return rc;
}

static json_t *strv_json(const char **v)
{
	json_t *a = json_array();

	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static int venv_key(struct runner *r, char out[65], struct err *e)
{
	const char *py = venv_python(r);
	char version[128], fhash[65] = "", src[160];
	bool local =
	    env_spec_local(r->spec->env.requirements, r->spec->env.pip_options);
	json_t *canon;
	int rc;

	if ((rc = venv_version(r, py, version, sizeof(version), e)) < 0)
		return err_wrap(e, "venv");
	if (r->spec->env.requirements_file) {
		char *text = NULL;
		size_t len = 0;

		if ((rc = jobfile_read(r, r->work_dir,
		                       r->spec->env.requirements_file,
		                       JOBFILE_MAX, &text, &len, e)) < 0)
			return err_wrap(e, "environment.requirements_file");
		sha256_hex(text, len, fhash);
		local = local || env_text_local(text, len, false);
		free(text);
	}
	canon = json_pack(
	    "{s:s, s:s, s:s, s:b, s:o, s:s, s:o, s:s}", "kind", "venv",
	    "python", py, "python_version", version, "system_site_packages",
	    r->spec->env.system_site_packages, "requirements",
	    strv_json(r->spec->env.requirements), "requirements_file", fhash,
	    "pip_options", strv_json(r->spec->env.pip_options), "platform",
	    env_platform());
	if (local) /* code of the source is part of it (env.h) */
		json_object_set_new(
		    canon, "source",
		    json_string(env_source_identity(r, src, sizeof(src))));
	env_key_json(canon, out);
	json_decref(canon);
	return 0;
}

/* The builder's environment: a clean PATH, a HOME of its own (the
 * sandbox's private /tmp; <env_dir>/.home without root), no pip
 * questions; proxy settings pass through. */
static char **venv_envp(struct runner *r, const char *prefix)
{
	static const char *const pass[] = {
	    "http_proxy",  "https_proxy", "no_proxy", "HTTP_PROXY",
	    "HTTPS_PROXY", "NO_PROXY",    "LANG",     NULL};
	char **v = NULL;
	char *slash = strrchr(prefix, '/');

	v = env_strv_add(v, xasprintf("PATH=%s/bin:/usr/local/bin:/usr/bin:"
	                              "/bin",
	                              prefix));
	v = env_strv_add(v, geteuid() == 0
	                        ? xstrdup("HOME=/tmp")
	                        : xasprintf("HOME=%.*s/.home",
	                                    (int)(slash ? slash - prefix : 0),
	                                    prefix));
	v = env_strv_add(v, xstrdup("PIP_DISABLE_PIP_VERSION_CHECK=1"));
	v = env_strv_add(v, xstrdup("PIP_NO_INPUT=1"));
	v = env_strv_add(v, xstrdup("PYTHONNOUSERSITE=1"));
	(void)r;
	return env_strv_pass(v, pass);
}

static int venv_pip(struct runner *r, const char *prefix, char **envp,
                    struct err *e)
{
	const struct jobspec *s = r->spec;
	char *argv[VENV_ARGV_MAX], tail[TAIL_SIZE];
	char *py = xasprintf("%s/bin/python", prefix), *req = NULL;
	size_t n = 0;
	int rc;

	argv[n++] = py;
	argv[n++] = "-m";
	argv[n++] = "pip";
	argv[n++] = "install";
	for (size_t i = 0; s->env.pip_options && s->env.pip_options[i]; i++)
		argv[n++] = (char *)s->env.pip_options[i];
	if (s->env.requirements_file) {
		/* relative: pip runs in the work directory (env_run) */
		req = xstrdup(s->env.requirements_file);
		argv[n++] = "-r";
		argv[n++] = req;
	}
	for (size_t i = 0; s->env.requirements && s->env.requirements[i] &&
	                   n + 1 < VENV_ARGV_MAX;
	     i++)
		argv[n++] = (char *)s->env.requirements[i];
	argv[n] = NULL;
	runner_logf(r, "env", "pip install (%zu argument(s))", n - 4);
	if ((rc = env_run(r, argv, envp, tail, sizeof(tail), e)) < 0)
		err_wrap(e, "pip install failed; its last output:\n%s", tail);
	free(py);
	free(req);
	return rc;
}

static int venv_build(struct runner *r, const char *prefix, struct err *e)
{
	const char *py = venv_python(r);
	char *argv[6], tail[TAIL_SIZE], **envp = venv_envp(r, prefix);
	size_t n = 0;
	int rc;

	if (geteuid() != 0)
		env_side_dir(r, prefix, ".home");
	argv[n++] = (char *)py;
	argv[n++] = "-m";
	argv[n++] = "venv";
	if (r->spec->env.system_site_packages)
		argv[n++] = "--system-site-packages";
	argv[n++] = (char *)prefix;
	argv[n] = NULL;
	runner_logf(
	    r, "env", "%s -m venv%s", py,
	    r->spec->env.system_site_packages ? " --system-site-packages" : "");
	if ((rc = env_run(r, argv, envp, tail, sizeof(tail), e)) < 0) {
		err_wrap(e, "venv: %s", tail);
		goto out;
	}
	if (r->spec->env.requirements_file || r->spec->env.requirements)
		rc = venv_pip(r, prefix, envp, e);
out:
	runner_strv_free(envp);
	return rc;
}

static int venv_activate(struct runner *r, const char *prefix,
                         struct env_result *res, struct err *e)
{
	res->prefix = xstrdup(prefix);
	res->path_prepend =
	    env_strv_add(res->path_prepend, xasprintf("%s/bin", prefix));
	res->vars =
	    env_strv_add(res->vars, xasprintf("VIRTUAL_ENV=%s", prefix));
	(void)r;
	(void)e;
	return 0;
}

const struct env_builder env_builder_venv = {
    .name = "venv",
    .key = venv_key,
    .build = venv_build,
    .activate = venv_activate,
};
