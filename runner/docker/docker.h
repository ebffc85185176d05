/* docker.h: the runner's docker pieces (images, layers, build contexts,
 * containers) on top of the Engine client library docker/docker.h, shared
 * by the docker launcher and the docker environment builder.  See
 * docs/docker.md. */
#ifndef TETHER_RUNNER_DOCKER_H
#define TETHER_RUNNER_DOCKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "docker/docker.h"

struct err;
struct runner;
struct docker;

/* Images (docker-image.c). */
int docker_image_inspect(struct docker *d, const char *ref, json_t **out,
                         struct err *e);
/* Pull with optional X-Registry-Auth; progress summarised into the job
 * log as [env] lines when r is set. */
int docker_image_pull(struct docker *d, struct runner *r, const char *image,
                      const char *auth, struct err *e);
int docker_image_tag(struct docker *d, const char *ref, const char *repo,
                     const char *tag, struct err *e);
/* POST /build with a tar context file; [env] lines into r's log. */
int docker_image_build(struct docker *d, struct runner *r, FILE *context,
                       const char *dockerfile, const char *tag, const char *key,
                       struct err *e);

/* Build tag FROM base with the job's pip or conda specs (docker-layer.c). */
int docker_layer_build(struct docker *d, struct runner *r, const char *base,
                       const char *tag, const char *key, struct err *e);

/* Build contexts (docker-context.c). */
/* True when relpath is excluded by the .dockerignore patterns. */
bool docker_ignore_match(char *const *patterns, const char *relpath);
/* Load <dir>/.dockerignore into a NULL-terminated list (empty if absent). */
int docker_ignore_load(const char *dir, char ***out, struct err *e);
/* Write the context of dir (honouring .dockerignore, but always sending
 * the Dockerfile and .dockerignore) as a tar into f (when non-NULL) and
 * feed "path, type, mode, sha256" of each entry into the key hash. */
struct sha256_ctx;
int docker_context_tar(const char *dir, const char *dockerfile, FILE *f,
                       struct sha256_ctx *key, struct err *e);

/* Containers (docker-container.c). */
#define DOCKER_WORK        "/tether/work"
#define DOCKER_OUTPUTS     "/tether/outputs"
#define DOCKER_CHECKPOINTS "/tether/checkpoints"
/* "tether-<job>-<attempt>-<hash of the attempt dir>": one per attempt. */
char *docker_container_name(const struct runner *r);
/* The POST /containers/create body for the attempt (argv, env, mounts,
 * user, limits, labels).  Refuses a mount the admin did not allow. */
int docker_container_body(const struct runner *r, const char *image,
                          json_t **out, struct err *e);

#endif
