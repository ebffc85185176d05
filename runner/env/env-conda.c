/* env-conda.c: the conda builder (micromamba, mamba or conda).
 *
 * The tool is spec.environment.tool, else the runner setting conda_tool (a
 * name or an absolute path), else the first of micromamba, mamba, conda on
 * PATH.  The environment.yml comes inline or from the source tree and is
 * copied next to the prefix, then:
 *   micromamba create -y -p PREFIX -f FILE
 *   mamba create -y -p PREFIX -f FILE
 *   conda env create -p PREFIX -f FILE
 * (plain `conda create -f` takes a package list, not an environment.yml;
 * `conda env create` never prompts).  The job then runs with PREFIX/bin
 * first on PATH and CONDA_PREFIX, CONDA_DEFAULT_ENV and CONDA_SHLVL=1 set.
 * A failed solve exits non-zero: the attempt ends env_failed with the
 * tool's last lines in the message (and all of its output in the log). */
#include "runner/env/env.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/jobfile.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONDA_FILE_MAX (1 << 20)
#define TAIL_SIZE      2048

/* The tool to use: a heap path, or NULL with the reason in e. */
static char *conda_tool(struct runner *r, struct err *e)
{
	static const char *const order[] = {"micromamba", "mamba", "conda",
	                                    NULL};
	const char *want = r->spec->env.conda_tool ? r->spec->env.conda_tool
	                                           : r->set.conda_tool;
	char *path;

	if (want) {
		if ((path = env_which(want)) == NULL)
			err_set(e, TERR_NOTFOUND,
			        "conda tool '%s' is not installed on this node "
			        "(not found on PATH)",
			        want);
		return path;
	}
	for (size_t i = 0; order[i]; i++)
		if ((path = env_which(order[i])) != NULL)
			return path;
	err_set(e, TERR_NOTFOUND,
	        "no micromamba, mamba or conda on this node's PATH (install "
	        "one, or set conda_tool in the agent's config)");
	return NULL;
}

static const char *tool_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* The environment.yml text (inline, or read from the source tree). */
static int conda_file(struct runner *r, char **out, size_t *len, struct err *e)
{
	int rc;

	if (r->spec->env.conda_inline) {
		*out = xstrdup(r->spec->env.conda_inline);
		*len = strlen(*out);
		return 0;
	}
	if ((rc = jobfile_read(r, r->work_dir, r->spec->env.conda_file,
	                       CONDA_FILE_MAX, out, len, e)) < 0)
		return err_wrap(e, "environment.file");
	return 0;
}

static int conda_key(struct runner *r, char out[65], struct err *e)
{
	char *tool = conda_tool(r, e), *text = NULL, fhash[65];
	size_t len;
	json_t *canon;
	int rc = 0;

	if (tool == NULL)
		return e ? e->code : TERR_NOTFOUND;
	if ((rc = conda_file(r, &text, &len, e)) < 0)
		goto out;
	sha256_hex(text, len, fhash);
	canon = json_pack("{s:s, s:s, s:s, s:s}", "kind", "conda", "tool",
	                  tool_name(tool), "file", fhash, "platform",
	                  env_platform());
	if (env_text_local(text, len, true)) { /* a pip: "- ./pkg" (env.h) */
		char src[160];

		json_object_set_new(
		    canon, "source",
		    json_string(env_source_identity(r, src, sizeof(src))));
	}
	env_key_json(canon, out);
	json_decref(canon);
out:
	free(tool);
	free(text);
	return rc;
}

/* HOME and the package cache: in the sandbox's private /tmp (a build
 * writes nowhere else but its prefix); without root next to the prefix. */
static char **conda_envp(const char *prefix)
{
	char *slash = strrchr(prefix, '/');
	int dlen = (int)(slash ? slash - prefix : 0);
	const char *path = getenv("PATH");
	char **v = NULL;

	v = env_strv_add(v,
	                 xasprintf("PATH=%s", path ? path
	                                           : "/usr/local/bin:/usr/bin:"
	                                             "/bin"));
	if (geteuid() == 0) {
		v = env_strv_add(v, xstrdup("HOME=/tmp"));
		v = env_strv_add(v, xstrdup("MAMBA_ROOT_PREFIX=/tmp/.mamba"));
	} else {
		v = env_strv_add(v, xasprintf("HOME=%.*s/.home", dlen, prefix));
		v = env_strv_add(v, xasprintf("MAMBA_ROOT_PREFIX=%.*s/.mamba",
		                              dlen, prefix));
	}
	v = env_strv_add(v, xstrdup("CONDA_YES=1"));
	return env_strv_pass(v, (const char *const[]){"http_proxy",
	                                              "https_proxy", "no_proxy",
	                                              "CONDA_PKGS_DIRS", NULL});
}

#define CONDA_WORK_FILE ".tether-environment.yml"

/* Write the text at fd's name, owned by the job user. */
static int conda_write_fd(struct runner *r, int fd, const char *text,
                          size_t len, struct err *e)
{
	if (geteuid() == 0 && fchown(fd, r->uid, r->gid) < 0)
		return err_sys(e, TERR_IO, "chown " CONDA_WORK_FILE);
	return fd_write_all(fd, text, len, e);
}

/* The environment.yml the key was computed from, where the builder reads
 * it: in the sandbox (root) /tether/work/.tether-environment.yml, created
 * in the work directory (no symlink followed, an old one replaced);
 * without root next to the prefix.  *path: the builder's name of it,
 * *host: the runner's (to remove it afterwards). */
static int conda_write_file(struct runner *r, const char *prefix, char **path,
                            char **host, struct err *e)
{
	char *text = NULL;
	size_t len;
	int rc, dfd = -1, fd = -1;

	if ((rc = conda_file(r, &text, &len, e)) < 0)
		goto out;
	if (geteuid() != 0) {
		*path = xasprintf("%s.environment.yml", prefix);
		*host = xstrdup(*path);
		rc = file_write_atomic(*path, text, len, 0644, e);
		goto out;
	}
	*path = xstrdup("/tether/work/" CONDA_WORK_FILE);
	*host = xasprintf("%s/" CONDA_WORK_FILE, r->work_dir);
	if ((dfd = open(r->work_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = err_sys(e, TERR_IO, "open %s", r->work_dir);
		goto out;
	}
	unlinkat(dfd, CONDA_WORK_FILE, 0);
	fd = openat(dfd, CONDA_WORK_FILE,
	            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		rc = err_sys(e, TERR_IO, "create %s", *host);
	else
		rc = conda_write_fd(r, fd, text, len, e);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(text);
	return rc;
}

static int conda_build(struct runner *r, const char *prefix, struct err *e)
{
	char *tool = conda_tool(r, e), *file = NULL, *host = NULL;
	char tail[TAIL_SIZE];
	char *argv[10], **envp = conda_envp(prefix);
	size_t n = 0;
	int rc;

	if (tool == NULL) {
		rc = e ? e->code : TERR_NOTFOUND;
		goto out;
	}
	if ((rc = conda_write_file(r, prefix, &file, &host, e)) < 0)
		goto out;
	if (geteuid() != 0) {
		env_side_dir(r, prefix, ".home");
		env_side_dir(r, prefix, ".mamba");
	}
	argv[n++] = tool;
	if (strcmp(tool_name(tool), "conda") == 0)
		argv[n++] = "env";
	argv[n++] = "create";
	if (strcmp(tool_name(tool), "conda") != 0)
		argv[n++] = "-y";
	argv[n++] = "-p";
	argv[n++] = (char *)prefix;
	argv[n++] = "-f";
	argv[n++] = file;
	argv[n] = NULL;
	runner_logf(r, "env", "%s %s -p %s -f %s", tool_name(tool), argv[1],
	            prefix, file);
	if ((rc = env_run(r, argv, envp, tail, sizeof(tail), e)) < 0)
		err_wrap(e,
		         "%s could not create the environment; its last "
		         "output:\n%s",
		         tool_name(tool), tail);
out:
	if (host)
		unlink(host);
	free(host);
	free(file);
	free(tool);
	runner_strv_free(envp);
	return rc;
}

static int conda_activate(struct runner *r, const char *prefix,
                          struct env_result *res, struct err *e)
{
	char *bin = xasprintf("%s/bin", prefix);
	struct stat st;

	if (stat(bin, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(bin);
		return err_set(e, TERR_FAIL,
		               "conda environment %s has no bin directory",
		               prefix);
	}
	res->prefix = xstrdup(prefix);
	res->path_prepend = env_strv_add(res->path_prepend, bin);
	res->vars =
	    env_strv_add(res->vars, xasprintf("CONDA_PREFIX=%s", prefix));
	res->vars =
	    env_strv_add(res->vars, xasprintf("CONDA_DEFAULT_ENV=%s", prefix));
	res->vars = env_strv_add(res->vars, xstrdup("CONDA_SHLVL=1"));
	(void)r;
	return 0;
}

const struct env_builder env_builder_conda = {
    .name = "conda",
    .key = conda_key,
    .build = conda_build,
    .activate = conda_activate,
};
