/* docker-layer.c: pip or conda specs layered on a docker base image, as a
 * generated Dockerfile (FROM the base) and a small generated context. */
#include "runner/docker/docker.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"
#include "runner/runner.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPEC_MAX (16 << 20)

/* Add one in-memory file to the context tar. */
static int tar_add(struct archive *a, const char *name, const char *data,
                   size_t len, struct err *e)
{
	struct archive_entry *ae = archive_entry_new();
	int rc = 0;

	archive_entry_set_pathname(ae, name);
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0644);
	archive_entry_set_size(ae, (la_int64_t)len);
	archive_entry_set_mtime(ae, time(NULL), 0);
	if (archive_write_header(a, ae) != ARCHIVE_OK ||
	    archive_write_data(a, data, len) < 0)
		rc = err_set(e, TERR_IO, "layer context %s: %s", name,
		             archive_error_string(a));
	archive_entry_free(ae);
	return rc;
}

/* A JSON exec-form argument list: ["a", "b"] (no shell involved). */
static void json_word(struct buf *b, const char *w, bool first)
{
	json_t *s = json_string(w);
	char *q = json_dumps(s, JSON_ENCODE_ANY);

	buf_printf(b, NULL, "%s%s", first ? "" : ", ", q);
	free(q);
	json_decref(s);
}

static void pip_run(struct buf *df, const struct jobspec *s)
{
	static const char *const pip[] = {
	    "python3", "-m", "pip", "install", "--no-cache-dir", NULL};

	buf_printf(df, NULL, "RUN [");
	for (size_t i = 0; pip[i]; i++)
		json_word(df, pip[i], i == 0);
	for (size_t i = 0; s->env.pip_options && s->env.pip_options[i]; i++)
		json_word(df, s->env.pip_options[i], false);
	if (s->env.requirements_file) {
		json_word(df, "-r", false);
		json_word(df, "/tether-env/requirements.txt", false);
	}
	for (size_t i = 0; s->env.requirements && s->env.requirements[i]; i++)
		json_word(df, s->env.requirements[i], false);
	buf_printf(df, NULL, "]\n");
}

static void conda_run(struct buf *df, const struct jobspec *s)
{
	const char *tool = s->env.conda_tool ? s->env.conda_tool : "conda";
	bool micro = strcmp(tool, "micromamba") == 0;

	buf_printf(df, NULL, "RUN [");
	json_word(df, tool, true);
	json_word(df, micro ? "install" : "env", false);
	if (micro)
		json_word(df, "-y", false);
	else
		json_word(df, "update", false);
	json_word(df, "-n", false);
	json_word(df, "base", false);
	json_word(df, "-f", false);
	json_word(df, "/tether-env/environment.yml", false);
	buf_printf(df, NULL, "]\n");
}

/* Copy a spec file of the source into the generated context. */
static int add_source_file(struct archive *a, struct runner *r, const char *rel,
                           const char *name, struct err *e)
{
	char *path = xasprintf("%s/%s", r->work_dir, rel), *data = NULL;
	size_t len;
	int rc = file_read_all(path, SPEC_MAX, &data, &len, e);

	if (rc == 0)
		rc = tar_add(a, name, data, len, e);
	free(data);
	free(path);
	return rc;
}

static int layer_context(struct runner *r, const char *base, FILE *f,
                         struct err *e)
{
	const struct jobspec *s = r->spec;
	struct archive *a = archive_write_new();
	struct buf df;
	int rc = 0;

	buf_init(&df, SPEC_MAX);
	buf_printf(&df, NULL, "FROM %s\nUSER root\n", base);
	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_FILE(a, f) != ARCHIVE_OK)
		rc = err_set(e, TERR_IO, "layer context: %s",
		             archive_error_string(a));
	if (rc == 0 && s->env.requirements_file) {
		buf_printf(&df, NULL, "COPY requirements.txt /tether-env/\n");
		rc = add_source_file(a, r, s->env.requirements_file,
		                     "requirements.txt", e);
	}
	if (rc == 0 && (s->env.conda_file || s->env.conda_inline)) {
		buf_printf(&df, NULL, "COPY environment.yml /tether-env/\n");
		rc = s->env.conda_file
		         ? add_source_file(a, r, s->env.conda_file,
		                           "environment.yml", e)
		         : tar_add(a, "environment.yml", s->env.conda_inline,
		                   strlen(s->env.conda_inline), e);
		conda_run(&df, s);
	}
	if (s->env.requirements_file || s->env.requirements)
		pip_run(&df, s);
	if (rc == 0)
		rc = tar_add(a, "Dockerfile", df.data, df.len, e);
	if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
		rc = err_set(e, TERR_IO, "layer context: %s",
		             archive_error_string(a));
	archive_write_free(a);
	buf_free(&df);
	return rc;
}

int docker_layer_build(struct docker *d, struct runner *r, const char *base,
                       const char *tag, const char *key, struct err *e)
{
	FILE *f = tmpfile();
	int rc;

	if (f == NULL)
		return err_sys(e, TERR_IO, "layer context: tmpfile");
	runner_logf(r, "env", "layering %s%s on %s as %s",
	            r->spec->env.conda_file || r->spec->env.conda_inline
	                ? "conda "
	                : "",
	            r->spec->env.requirements || r->spec->env.requirements_file
	                ? "pip requirements"
	                : "environment",
	            base, tag);
	if ((rc = layer_context(r, base, f, e)) == 0)
		rc = docker_image_build(d, r, f, "Dockerfile", tag, key, e);
	fclose(f);
	return rc;
}
