/* env-images.c: docker environments under the env cache budget.  The
 * engine's image store holds a docker environment (tether-env:<key>), so
 * env_dir has no tree for it; instead <env_dir>/<key> holds only its usage
 * record (kind "docker", the image's size as the engine reports it), which
 * lists it, counts it against env_budget_bytes and lets LRU eviction pick
 * it like a venv.  Evicting that entry removes the image (and its -base);
 * every budget pass of a docker job also removes dangling images Tether
 * built (label tether.env, no tag left).  Images a container uses stay.
 * See docs/environments.md and docs/docker.md. */
#include "runner/docker/docker.h"
#include "runner/env/env.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/runner.h"

#include <stdlib.h>
#include <string.h>

void env_images_evicted(void *socket_path, const struct env_entry *ent)
{
	struct err e = {0};

	if (strcmp(ent->kind, "docker") != 0)
		return;
	if (docker_env_image_remove(socket_path, ent->key, &e) < 0)
		log_warn("evicted docker environment %.12s: %s", ent->key,
		         e.msg);
}

int env_images_record(struct runner *r, const char *env_dir, struct err *e)
{
	char *ref = xasprintf(DOCKER_ENV_REPO ":%s", r->env.key);
	struct docker *d = NULL;
	json_t *info = NULL;
	int64_t size = 0;
	int rc;

	if ((rc = docker_open(r->set.docker_socket, &d, e)) == 0 &&
	    (rc = docker_image_inspect(d, ref, &info, e)) == 0) {
		json_t *s = json_object_get(info, "Size");
		size = json_is_integer(s) ? json_integer_value(s) : 0;
		rc = env_cache_record(env_dir, r->env.key, "docker", size, e);
	}
	json_decref(info);
	docker_close(d);
	free(ref);
	return rc;
}

static bool keep_tagged(void *arg, const char *key)
{
	(void)arg;
	(void)key;
	return true; /* tagged images leave through eviction only */
}

void env_images_prune(struct runner *r)
{
	struct err e = {0};
	int removed = 0;

	if (docker_env_images_prune(r->set.docker_socket, keep_tagged, NULL,
	                            &removed, &e) < 0)
		runner_logf(r, "env", "pruning docker images: %s", e.msg);
	else if (removed > 0)
		runner_logf(r, "env", "pruned %d dangling tether-env image(s)",
		            removed);
}
