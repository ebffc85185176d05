/* docker-hygiene.c: removing what crashes and evictions leave behind:
 * orphan job containers (for the agent at start) and tether-env images
 * (for the env cache budget). */
#include "docker/docker.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* GET a list with a filters={...} query. */
static int list_filtered(struct docker *d, const char *what, json_t *filters,
                         json_t **out, struct err *e)
{
	char *f = json_dumps(filters, JSON_COMPACT), *q = docker_urlencode(f);
	char *path = xasprintf("/%s/json?all=1&filters=%s", what, q);
	int rc = docker_call(d, "GET", path, NULL, out, e);

	free(path);
	free(q);
	free(f);
	return rc;
}

static int remove_container(struct docker *d, const char *id, struct err *e)
{
	char *path = xasprintf("/containers/%s?force=1&v=1", id);
	int rc = docker_call(d, "DELETE", path, NULL, NULL, e);

	free(path);
	return rc == TERR_NOTFOUND ? 0 : rc;
}

int docker_remove_orphans(const char *socket_path, const char *state_dir,
                          bool (*known)(void *arg, const char *job,
                                        int64_t attempt),
                          void *arg, int *removed, struct err *e)
{
	struct docker *d = NULL;
	json_t *lst = NULL, *c, *filters;
	char *label = xasprintf("tether.state_dir=%s", state_dir);
	size_t i;
	int rc;

	*removed = 0;
	filters = json_pack("{s:[s]}", "label", label);
	if ((rc = docker_open(socket_path, &d, e)) < 0 ||
	    (rc = list_filtered(d, "containers", filters, &lst, e)) < 0)
		goto out;
	json_array_foreach(lst, i, c)
	{
		json_t *labels = json_object_get(c, "Labels");
		const char *id = json_string_value(json_object_get(c, "Id"));
		const char *job =
		    json_string_value(json_object_get(labels, "tether.job"));
		const char *att = json_string_value(
		    json_object_get(labels, "tether.attempt"));
		int64_t n = -1;

		if (id == NULL || job == NULL || att == NULL ||
		    parse_i64(att, 0, INT64_MAX, &n, NULL) < 0 ||
		    known(arg, job, n))
			continue;
		log_info("removing orphan container %.12s (job %s attempt %s)",
		         id, job, att);
		if ((rc = remove_container(d, id, e)) < 0)
			goto out;
		(*removed)++;
	}
out:
	if (rc < 0)
		err_wrap(e, "remove orphan containers");
	json_decref(filters);
	json_decref(lst);
	docker_close(d);
	free(label);
	return rc;
}

static int remove_image(struct docker *d, const char *ref, struct err *e)
{
	char *path = xasprintf("/images/%s", ref);
	int rc = docker_call(d, "DELETE", path, NULL, NULL, e);

	free(path);
	if (rc == TERR_NOTFOUND)
		return 0;
	if (rc == TERR_CONFLICT) /* in use by a container: keep it */
		log_info("image %s in use, kept: %s", ref, e->msg);
	return rc == TERR_CONFLICT ? 0 : rc;
}

int docker_env_image_remove(const char *socket_path, const char *key,
                            struct err *e)
{
	struct docker *d = NULL;
	char *ref = xasprintf(DOCKER_ENV_REPO ":%s", key);
	char *base = xasprintf(DOCKER_ENV_REPO ":%s-base", key);
	int rc;

	if ((rc = docker_open(socket_path, &d, e)) == 0 &&
	    (rc = remove_image(d, ref, e)) == 0)
		rc = remove_image(d, base, e);
	docker_close(d);
	free(ref);
	free(base);
	return rc;
}

/* The key of a "tether-env:<key>[-base]" tag, in out (65 bytes). */
static bool tag_key(const char *tag, char out[65])
{
	size_t n = strlen(DOCKER_ENV_REPO ":");

	if (strncmp(tag, DOCKER_ENV_REPO ":", n) != 0 || strlen(tag + n) < 64)
		return false;
	memcpy(out, tag + n, 64);
	out[64] = '\0';
	return true;
}

/* Remove the tether-env tags of one image that keep() rejects. */
static int prune_tags(struct docker *d, json_t *img,
                      bool (*keep)(void *arg, const char *key), void *arg,
                      int *removed, struct err *e)
{
	json_t *tags = json_object_get(img, "RepoTags"), *t;
	char key[65];
	size_t i;
	int rc;

	json_array_foreach(tags, i, t)
	{
		const char *tag = json_string_value(t);

		if (tag == NULL || !tag_key(tag, key) || keep(arg, key))
			continue;
		if ((rc = remove_image(d, tag, e)) < 0)
			return rc;
		(*removed)++;
	}
	return 0;
}

int docker_env_images_prune(const char *socket_path,
                            bool (*keep)(void *arg, const char *key), void *arg,
                            int *removed, struct err *e)
{
	struct docker *d = NULL;
	json_t *lst = NULL, *img;
	json_t *dangling = json_pack("{s:[s], s:[s]}", "dangling", "true",
	                             "label", "tether.env");
	size_t i;
	int rc;

	*removed = 0;
	if ((rc = docker_open(socket_path, &d, e)) < 0 ||
	    (rc = list_filtered(d, "images", dangling, &lst, e)) < 0)
		goto out;
	json_array_foreach(lst, i, img)
	{
		const char *id = json_string_value(json_object_get(img, "Id"));

		if (id && (rc = remove_image(d, id, e)) < 0)
			goto out;
		*removed += id != NULL;
	}
	json_decref(lst);
	lst = NULL;
	if ((rc = docker_call(d, "GET", "/images/json", NULL, &lst, e)) < 0)
		goto out;
	json_array_foreach(lst, i, img)
	{
		if ((rc = prune_tags(d, img, keep, arg, removed, e)) < 0)
			goto out;
	}
out:
	if (rc < 0)
		err_wrap(e, "prune tether-env images");
	json_decref(dangling);
	json_decref(lst);
	docker_close(d);
	return rc;
}
