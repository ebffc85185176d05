/* env.h: building and caching a job's environment (none, venv, conda,
 * docker).  One builder per kind behind struct env_builder; env_prepare()
 * does the cache, the lock and the [env] log lines around it. */
#ifndef TETHER_ENV_H
#define TETHER_ENV_H

#include <stdbool.h>

#include "runner/runner.h"

struct err;

struct env_builder {
	const char *name;
	/* Cache key: sha256 hex of the canonical spec (kind, file contents,
	 * interpreter version, options, platform). */
	int (*key)(struct runner *r, char out[65], struct err *e);
	/* Build into prefix (a fresh directory, renamed into place by the
	 * caller on success).  Output goes to the job log as "[env] ...". */
	int (*build)(struct runner *r, const char *prefix, struct err *e);
	/* Fill res (PATH entries, variables, image) for a built prefix. */
	int (*activate)(struct runner *r, const char *prefix,
	                struct env_result *res, struct err *e);
};

extern const struct env_builder env_builder_venv;
extern const struct env_builder env_builder_conda;
extern const struct env_builder env_builder_docker;

/* Build or reuse the job's environment; fills r->env.  Failure means the
 * attempt ends env_failed with the message in the log. */
int env_prepare(struct runner *r, struct err *e);
void env_result_free(struct env_result *res);

#endif
