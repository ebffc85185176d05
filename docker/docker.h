/* docker.h: the Docker Engine API client library (docker/): requests over
 * the engine's unix socket (libcurl with CURLOPT_UNIX_SOCKET_PATH), the
 * /version probe, stream framing and the hygiene the agent and the env
 * cache share.  Used by the agent and the runner; the runner's own docker
 * pieces (images, containers, contexts) are in runner/docker/docker.h.  See
 * docs/docker.md and docs/architecture.md. */
#ifndef TETHER_DOCKER_DOCKER_H
#define TETHER_DOCKER_DOCKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"

struct err;
struct docker;

/* The newest API version this client speaks; the engine may speak less. */
#define DOCKER_API_OURS "1.41"
/* The oldest engine API version we accept. */
#define DOCKER_API_MIN  "1.40"
#define DOCKER_ENV_REPO "tether-env"

/* Data callback for streamed responses: return <0 (a TERR_*) to abort. */
typedef int (*docker_data_cb)(void *arg, const char *data, size_t len);

struct docker_req {
	const char *method;
	const char *path;          /* without the /v1.xx prefix */
	json_t *body;              /* JSON body, or NULL */
	FILE *upload;              /* raw body (tar), or NULL */
	int64_t upload_size;       /* size of upload */
	const char *content_type;  /* of upload */
	const char *registry_auth; /* X-Registry-Auth value, or NULL */
	docker_data_cb on_data;    /* 2xx body goes here; NULL: collected */
	void *arg;
	void (*on_tick)(void *arg); /* called often while transferring */
	const volatile int *cancel; /* non-zero aborts the transfer */
	long timeout_ms;            /* 0: none */
};

/* What the engine's unversioned GET /version answered. */
struct docker_version {
	long status;     /* HTTP status; 0 when nothing answered */
	char api[16];    /* "ApiVersion", "" when absent */
	char engine[64]; /* "Version", "" when absent */
	char error[256]; /* why nothing answered (libcurl's words) */
};
/* The one probe of an engine: GET /version at socket_path (NULL: the
 * default socket, ATTEMPT_DEF_DOCKER_SOCKET of common/attempt.h) within
 * timeout_ms.  Fills *out as far as it got; <0 when nothing answered (TERR_NET)
 * or the status is >= 400. */
int docker_version_probe(const char *socket_path, long timeout_ms,
                         struct docker_version *out, struct err *e);

/* Connect (GET /version) and negotiate min(engine's version, ours). */
int docker_open(const char *socket_path, struct docker **out, struct err *e);
void docker_close(struct docker *d);
const char *docker_socket(const struct docker *d);

/* Pick min(engine, ours) into out; refuse an engine older than min_ok. */
int docker_version_pick(const char *engine, const char *ours,
                        const char *min_ok, char out[16], struct err *e);

/* One request.  *status gets the HTTP status.  A status >= 400 is an
 * error carrying the engine's message: TERR_NOTFOUND (404), TERR_CONFLICT
 * (409), TERR_AUTH (401/403), TERR_FAIL otherwise.  Without on_data, a
 * JSON reply is parsed into *reply (may be NULL). */
int docker_request(struct docker *d, const struct docker_req *q, long *status,
                   json_t **reply, struct err *e);
/* Shorthand: JSON request and reply. */
int docker_call(struct docker *d, const char *method, const char *path,
                json_t *body, json_t **reply, struct err *e);

/* Demultiplex Docker's stdout/stderr stream ([type, 0,0,0, size BE32]
 * header then payload), keeping state across feeds so frames split
 * anywhere are handled. */
struct docker_demux {
	unsigned char hdr[8];
	size_t hdr_len;
	uint32_t left; /* payload bytes still due for the current frame */
	int stream;    /* 1 stdout, 2 stderr */
};
typedef int (*docker_frame_cb)(void *arg, int stream, const char *data,
                               size_t len);
void docker_demux_init(struct docker_demux *dm);
int docker_demux_feed(struct docker_demux *dm, const char *data, size_t len,
                      docker_frame_cb cb, void *arg);

/* Split a JSON-lines progress stream (build, pull) into objects. */
struct docker_lines {
	struct buf b;
	int (*cb)(void *arg, json_t *obj, struct err *e);
	void *arg;
	struct err *e;
};
void docker_lines_init(struct docker_lines *l,
                       int (*cb)(void *arg, json_t *obj, struct err *e),
                       void *arg, struct err *e);
/* A docker_data_cb over struct docker_lines. */
int docker_lines_feed(void *lines, const char *data, size_t len);
void docker_lines_free(struct docker_lines *l);

/* URL-safe base64 of {"username","password","serveraddress"} for
 * X-Registry-Auth, from a "user:password" secret; caller frees (wiped). */
char *docker_registry_auth(const char *image, const char *user_pass);
/* Registry host of an image reference ("127.0.0.1:5000" or Docker Hub). */
char *docker_image_registry(const char *image);
/* Split "repo[:tag][@digest]" into fromImage and tag (tag or digest). */
void docker_image_split(const char *image, char **repo, char **tag);
/* Percent-encode for a query string. */
char *docker_urlencode(const char *s);

/* Hygiene, for the agent and the env cache (docker-hygiene.c). */
/* Remove the job containers of this state directory (label
 * tether.state_dir) whose (job, attempt) known() does not recognise, in
 * any state; *removed counts them.  For the agent, at start. */
int docker_remove_orphans(const char *socket_path, const char *state_dir,
                          bool (*known)(void *arg, const char *job,
                                        int64_t attempt),
                          void *arg, int *removed, struct err *e);
/* Remove the image tether-env:<key> (env cache eviction). */
int docker_env_image_remove(const char *socket_path, const char *key,
                            struct err *e);
/* Remove dangling images built by Tether (label tether.env) and tether-env
 * images whose key keep() rejects; *removed counts them. */
int docker_env_images_prune(const char *socket_path,
                            bool (*keep)(void *arg, const char *key), void *arg,
                            int *removed, struct err *e);

#endif
