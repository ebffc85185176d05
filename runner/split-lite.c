/* split-lite.c: linked into tether-runner only (split.h).  The entry
 * points of the families that need libgit2, libarchive or libcurl, as
 * placeholders: runner_needs_full() sends every attempt that would reach
 * one of them to tether-runner-full before anything is written, so the
 * functions below are never called; if one is, it fails (or, for an
 * evicted docker environment, asks tether-runner-full) instead of
 * crashing. */
#include "runner/split.h"

#include "common/err.h"
#include "common/log.h"
#include "runner/env/env.h"
#include "runner/launcher.h"
#include "runner/metrics/tb-reader.h"
#include "runner/source/source.h"
#include "runner/supervisor/supervisor.h"

#include <string.h>
#include <unistd.h>

const bool runner_is_full = false;

#define NEEDS_FULL(what)                                                       \
	err_set(e, TERR_INVAL, "%s needs tether-runner-full", what)

/* No op is reached: runner_needs_full() hands these attempts over. */
const struct launcher_ops launcher_docker = {.name = "docker"};
const struct launcher_ops launcher_spark = {.name = "spark"};
const struct env_builder env_builder_docker = {.name = "docker"};

void tb_reader_main(const char *dir, int out_fd)
{
	(void)dir;
	(void)out_fd;
	_exit(1);
}

int gitsrc_fetch(struct runner *r, struct err *e)
{
	(void)r;
	return NEEDS_FULL("a git source");
}

int snapshot_extract(const char *archive, const char *dir,
                     const struct snapshot_limits *lim, struct err *e)
{
	(void)dir;
	(void)lim;
	return NEEDS_FULL(archive);
}

int supervisor_pack(const char *dir, struct err *e)
{
	return NEEDS_FULL(dir);
}

int env_images_record(struct runner *r, const char *env_dir, struct err *e)
{
	(void)r;
	return NEEDS_FULL(env_dir);
}

void env_images_prune(struct runner *r)
{
	(void)r;
}

/* Eviction runs in every job with an environment and may pick a docker
 * one: its image goes through tether-runner-full. */
void env_images_evicted(void *socket_path, const struct env_entry *ent)
{
	const char *args[] = {"envs",      "remove-image", "--docker-socket",
	                      socket_path, ent->key,       NULL};
	struct err e = {0};

	if (strcmp(ent->kind, "docker") != 0)
		return;
	if (runner_run_full(args, &e) < 0)
		log_warn("evicted docker environment %.12s: %s", ent->key,
		         e.msg);
}
