/* env-docker.c: docker environments.  An image by name (pulled when
 * absent, with the registry secret) or built from a Dockerfile in the
 * source, optionally with pip or conda specs layered on top; the result is
 * tagged tether-env:<key> so the env cache covers images too.  The
 * builder caches by itself (own_cache): the engine's image store is the
 * cache, env_prepare only takes the per-key lock around it. */
#include "runner/docker/docker.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"
#include "runner/jobfile.h"
#include "runner/env/env.h"
#include "runner/runner.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IMAGE_FILE "image.json"

/* Pip or conda specs to layer on the base image? */
static bool layered(const struct jobspec *s)
{
	return s->env.requirements_file || s->env.requirements ||
	       s->env.conda_file || s->env.conda_inline;
}

static char *registry_auth(struct runner *r, const char *image, struct err *e)
{
	const char *name = r->spec->env.registry_secret, *v;

	if (name == NULL)
		return NULL;
	if ((v = jobspec_secret(r->spec, name)) == NULL) {
		err_set(e, TERR_INVAL,
		        "environment.registry_secret: no secret named '%s'",
		        name);
		return NULL;
	}
	return docker_registry_auth(image, v);
}

/* The image's id, pulling it first when the engine lacks it. */
static int image_id(struct docker *d, struct runner *r, const char *image,
                    char **id, struct err *e)
{
	json_t *info = NULL;
	char *auth = NULL;
	int rc = docker_image_inspect(d, image, &info, e);

	if (rc == TERR_NOTFOUND) {
		err_clear(e);
		auth = registry_auth(r, image, e);
		if (auth == NULL && r->spec->env.registry_secret)
			return e->code;
		if ((rc = docker_image_pull(d, r, image, auth, e)) < 0 ||
		    (rc = docker_image_inspect(d, image, &info, e)) < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	*id = xstrdup(json_string_value(json_object_get(info, "Id"))
	                  ? json_string_value(json_object_get(info, "Id"))
	                  : "");
out:
	freezero_str(auth);
	json_decref(info);
	return rc;
}

static void hash_str(struct sha256_ctx *h, const char *tag, const char *s)
{
	sha256_update(h, tag, strlen(tag) + 1);
	if (s != NULL)
		sha256_update(h, s, strlen(s) + 1);
}

/* Hash the layering specs (files by content). */
static int hash_layers(struct runner *r, struct sha256_ctx *h, struct err *e)
{
	const struct jobspec *s = r->spec;
	char hex[SHA256_HEX_LEN + 1], src[160];
	bool local = env_spec_local(s->env.requirements, s->env.pip_options);
	int rc = 0;

	for (size_t i = 0; s->env.requirements && s->env.requirements[i]; i++)
		hash_str(h, "req", s->env.requirements[i]);
	for (size_t i = 0; s->env.pip_options && s->env.pip_options[i]; i++)
		hash_str(h, "pipopt", s->env.pip_options[i]);
	hash_str(h, "conda-inline", s->env.conda_inline);
	hash_str(h, "conda-tool", s->env.conda_tool);
	const char *files[] = {s->env.requirements_file, s->env.conda_file};
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		char *text = NULL;
		size_t len = 0;

		if (files[i] == NULL)
			continue;
		if ((rc = jobfile_read(r, r->work_dir, files[i], JOBFILE_MAX,
		                       &text, &len, e)) == 0) {
			sha256_hex(text, len, hex);
			hash_str(h, files[i], hex);
			local = local || env_text_local(text, len, i == 1);
		}
		free(text);
	}
	/* code of the source is part of it (env.h) */
	if (rc == 0 && local)
		hash_str(h, "source", env_source_identity(r, src, sizeof(src)));
	return rc;
}

static int docker_key(struct runner *r, char out[65], struct err *e)
{
	const struct jobspec *s = r->spec;
	struct sha256_ctx *h = sha256_new();
	struct docker *d = NULL;
	char *id = NULL, id_hex[SHA256_HEX_LEN + 1];
	int rc;

	hash_str(h, "tether-docker-env", "v1");
	if (s->env.dockerfile != NULL) {
		/* beneath the work directory, a regular file (jobfile.h) */
		if ((rc = jobfile_sha256(r, r->work_dir, s->env.dockerfile,
		                         JOBFILE_MAX, id_hex, e)) ==
		    TERR_NOTFOUND) {
			err_set(e, rc,
			        "environment.dockerfile: %s is not a file "
			        "in the source",
			        s->env.dockerfile);
			goto out;
		} else if (rc < 0) {
			err_wrap(e, "environment.dockerfile");
			goto out;
		}
		hash_str(h, "dockerfile", s->env.dockerfile);
		rc = docker_context_tar(r->work_dir, s->env.dockerfile, NULL, h,
		                        e);
	} else if ((rc = docker_open(r->set.docker_socket, &d, e)) == 0 &&
	           (rc = image_id(d, r, s->env.image, &id, e)) == 0)
		hash_str(h, s->env.image, id);
	if (rc == 0 && layered(s))
		rc = hash_layers(r, h, e);
out:
	sha256_final(h, out);
	free(id);
	docker_close(d);
	return rc;
}

/* Build the Dockerfile in the source into tag. */
static int build_dockerfile(struct docker *d, struct runner *r, const char *tag,
                            const char *key, struct err *e)
{
	FILE *f = tmpfile();
	int rc;

	if (f == NULL)
		return err_sys(e, TERR_IO, "build context: tmpfile");
	runner_logf(r, "env", "building %s from %s", tag,
	            r->spec->env.dockerfile);
	rc = docker_context_tar(r->work_dir, r->spec->env.dockerfile, f, NULL,
	                        e);
	if (rc == 0)
		rc = docker_image_build(d, r, f, r->spec->env.dockerfile, tag,
		                        key, e);
	fclose(f);
	return rc;
}

static int write_image_file(const char *prefix, const char *tag, struct err *e)
{
	char *path = xasprintf("%s/" IMAGE_FILE, prefix);
	json_t *j = json_pack("{s:s}", "image", tag);
	char *text = json_dumps(j, JSON_COMPACT);
	int rc = file_write_atomic(path, text, strlen(text), 0644, e);

	free(text);
	json_decref(j);
	free(path);
	return rc;
}

static int docker_build(struct runner *r, const char *prefix, struct err *e)
{
	const struct jobspec *s = r->spec;
	struct docker *d = NULL;
	char key[65], *tag = NULL, *base = NULL, *id = NULL;
	int rc;

	if (strlen(r->env.key) == 64)
		memcpy(key, r->env.key, 65);
	else if ((rc = docker_key(r, key, e)) < 0)
		return rc;
	tag = xasprintf(DOCKER_ENV_REPO ":%s", key);
	base = layered(s) ? xasprintf("%s-base", tag) : xstrdup(tag);
	if ((rc = docker_open(r->set.docker_socket, &d, e)) < 0)
		goto out;
	if (s->env.dockerfile != NULL)
		rc = build_dockerfile(d, r, base, key, e);
	else if ((rc = image_id(d, r, s->env.image, &id, e)) == 0)
		rc = docker_image_tag(d, id, DOCKER_ENV_REPO,
		                      base + strlen(DOCKER_ENV_REPO ":"), e);
	if (rc == 0 && layered(s))
		rc = docker_layer_build(d, r, base, tag, key, e);
	if (rc == 0 && prefix != NULL)
		rc = write_image_file(prefix, tag, e);
	if (rc == 0)
		runner_logf(r, "env", "image %s ready", tag);
	else if (layered(s)) {
		/* the -base this build tagged; the next try builds it again */
		struct err ignored = {0};
		docker_env_image_remove(r->set.docker_socket, key, &ignored);
	}
out:
	free(id);
	free(tag);
	free(base);
	docker_close(d);
	return rc;
}

/* The env's image is tether-env:<key>; TERR_NOTFOUND when not built yet
 * (env_prepare then builds it under the key's lock). */
static int docker_activate(struct runner *r, const char *prefix,
                           struct env_result *res, struct err *e)
{
	char key[65], *image = NULL;
	struct docker *d = NULL;
	json_t *info = NULL;
	int rc = 0;

	if (strlen(r->env.key) == 64)
		memcpy(key, r->env.key, 65);
	else if ((rc = docker_key(r, key, e)) < 0)
		return rc;
	image = xasprintf(DOCKER_ENV_REPO ":%s", key);
	if ((rc = docker_open(r->set.docker_socket, &d, e)) < 0)
		goto out;
	rc = docker_image_inspect(d, image, &info, e);
	if (rc == TERR_NOTFOUND && prefix != NULL) {
		/* a directory cache entry whose image was pruned */
		runner_logf(r, "env", "image %s is gone; rebuilding", image);
		err_clear(e);
		rc = docker_build(r, prefix, e);
	}
	if (rc == 0) {
		free(res->image);
		res->image = image;
		image = NULL;
	}
out:
	json_decref(info);
	docker_close(d);
	free(image);
	return rc;
}

const struct env_builder env_builder_docker = {
    .name = "docker",
    .key = docker_key,
    .build = docker_build,
    .activate = docker_activate,
    .own_cache = true,
};
