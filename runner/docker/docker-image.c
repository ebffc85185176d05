/* docker-image.c: images through the Engine API: inspect, pull (with
 * registry auth, progress summarised into the job log), tag and build. */
#include "runner/docker/docker.h"

#include "common/err.h"
#include "common/util.h"
#include "runner/runner.h"
#include "runner/source/source.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BUILD_TIMEOUT_MS (6L * 3600 * 1000)

struct progress {
	struct runner *r;
	const char *image;
	int layers_done, layers_present;
	char *error;
	char *id;     /* build: the image id from the aux message */
	char **steps; /* build: images its steps made (" ---> id") */
	size_t nsteps;
	bool step_ran;         /* the current step ran (not FROM, not cached) */
	volatile int cancel;   /* set when the attempt must stop */
	const char *stop;      /* its reason (cancelled, lost, ...) */
	int64_t last_check_ms; /* of the fence */
};

/* While pulling or building: stop when the attempt is cancelled or its
 * lease lapses (checked at most twice a second). */
static void progress_tick(void *arg)
{
	struct docker_lines *l = arg;
	struct progress *p = l->arg;
	int64_t now = now_mono_ms();

	if (p->cancel || now - p->last_check_ms < 500)
		return;
	p->last_check_ms = now;
	if ((p->stop = source_fenced(p->r)) != NULL)
		p->cancel = 1;
}

/* The error for a transfer the fence stopped. */
static int progress_stopped(struct progress *p, const char *what, struct err *e)
{
	runner_logf(p->r, "env", "stopping %s: %s", what, p->stop);
	return err_set(e, TERR_TIMEOUT,
	               "%s while building the environment (%s stopped)",
	               p->stop, what);
}

int docker_image_inspect(struct docker *d, const char *ref, json_t **out,
                         struct err *e)
{
	char *path = xasprintf("/images/%s/json", ref);
	int r = docker_call(d, "GET", path, NULL, out, e);

	free(path);
	return r;
}

static void progress_free(struct progress *p)
{
	free(p->error);
	free(p->id);
	for (size_t i = 0; i < p->nsteps; i++)
		free(p->steps[i]);
	free(p->steps);
}

/* Keep the engine's first error message ({"error": "..."}). */
static int progress_error(struct progress *p, json_t *obj)
{
	const char *msg = json_string_value(json_object_get(obj, "error"));

	if (msg == NULL)
		return 0;
	if (p->error == NULL)
		p->error = xstrdup(msg);
	return 1;
}

/* Send q (POST of a pull or build) with the engine's JSON lines to
 * line(p), the fence checked while it streams; the result is the fence's
 * stop, else the request's failure, else the engine's first error. */
static int progress_request(struct docker *d, struct docker_req *q,
                            struct progress *p,
                            int (*line)(void *arg, json_t *obj, struct err *e),
                            const char *what, struct err *e)
{
	struct docker_lines lines;
	int rc;

	docker_lines_init(&lines, line, p, e);
	q->on_data = docker_lines_feed;
	q->on_tick = progress_tick;
	q->cancel = &p->cancel;
	q->arg = &lines;
	rc = docker_request(d, q, NULL, NULL, e);
	docker_lines_free(&lines);
	if (p->stop != NULL)
		return progress_stopped(p, what, e);
	if (rc == 0 && p->error != NULL)
		return err_set(e, TERR_FAIL, "%s", p->error);
	return rc;
}

/* Pull progress: log the stage changes, count the layers, skip the
 * byte-level noise (Downloading, Extracting, Waiting ...). */
static int pull_line(void *arg, json_t *obj, struct err *e)
{
	struct progress *p = arg;
	const char *st = json_string_value(json_object_get(obj, "status"));
	const char *id = json_string_value(json_object_get(obj, "id"));

	if (progress_error(p, obj) || st == NULL)
		return 0;
	if (strcmp(st, "Pull complete") == 0)
		p->layers_done++;
	else if (strcmp(st, "Already exists") == 0)
		p->layers_present++;
	else if (!strncmp(st, "Pulling from", 12) ||
	         !strncmp(st, "Digest:", 7) || !strncmp(st, "Status:", 7))
		runner_logf(p->r, "env", "%s%s%s", st,
		            id && *st == 'P' ? " " : "",
		            id && *st == 'P' ? id : "");
	return 0;
}

int docker_image_pull(struct docker *d, struct runner *r, const char *image,
                      const char *auth, struct err *e)
{
	struct progress p = {.r = r, .image = image};
	char *repo, *tag, *qr, *qt, *path;
	struct docker_req q = {.method = "POST",
	                       .registry_auth = auth,
	                       .timeout_ms = BUILD_TIMEOUT_MS};
	int rc;

	docker_image_split(image, &repo, &tag);
	qr = docker_urlencode(repo);
	qt = docker_urlencode(tag);
	path = xasprintf("/images/create?fromImage=%s&tag=%s", qr, qt);
	q.path = path;
	runner_logf(r, "env", "pulling %s%s", image,
	            auth ? " (with registry credentials)" : "");
	rc = progress_request(d, &q, &p, pull_line, "docker pull", e);
	if (rc < 0 && p.stop == NULL) {
		if (rc == TERR_AUTH || strstr(e->msg, "unauthorized") ||
		    strstr(e->msg, "authentication required") ||
		    strstr(e->msg, "no basic auth"))
			e->code = rc = TERR_AUTH;
		err_wrap(e, "pull %s%s", image,
		         rc == TERR_AUTH ? " (check the registry secret)" : "");
	} else
		runner_logf(r, "env",
		            "pulled %s: %d layers downloaded, %d "
		            "already present",
		            image, p.layers_done, p.layers_present);
	progress_free(&p);
	free(path);
	free(qr);
	free(qt);
	free(repo);
	free(tag);
	return rc;
}

int docker_image_tag(struct docker *d, const char *ref, const char *repo,
                     const char *tag, struct err *e)
{
	char *qr = docker_urlencode(repo), *qt = docker_urlencode(tag);
	char *path = xasprintf("/images/%s/tag?repo=%s&tag=%s", ref, qr, qt);
	int r = docker_call(d, "POST", path, NULL, NULL, e);

	free(path);
	free(qr);
	free(qt);
	return r;
}

/* " ---> 0123456789ab" after " ---> Running in …": the image a step of
 * this build committed (not a FROM image, not a cached step's). */
static void build_step(struct progress *p, const char *line, size_t n)
{
	static const char arrow[] = " ---> ", running[] = " ---> Running in ";
	size_t a = sizeof(arrow) - 1, h;

	if (strncmp(line, "Step ", 5) == 0)
		p->step_ran = false;
	if (strncmp(line, running, sizeof(running) - 1) == 0)
		p->step_ran = true;
	if (!p->step_ran || n < a + 12 || strncmp(line, arrow, a) != 0)
		return;
	h = strspn(line + a, "0123456789abcdef");
	if (h < 12 || a + h != n || p->nsteps >= 1000)
		return;
	p->steps = realloc(p->steps, (p->nsteps + 1) * sizeof(*p->steps));
	if (p->steps == NULL)
		abort();
	p->steps[p->nsteps++] = xasprintf("%.*s", (int)h, line + a);
}

/* A failed build leaves no dangling image: remove what its steps
 * committed, newest first.  The engine refuses (and so keeps) an image
 * that is tagged or that other images build on: cached steps of earlier
 * builds stay. */
static void build_unwind(struct docker *d, struct progress *p)
{
	int removed = 0;

	for (size_t i = p->nsteps; i-- > 0;) {
		char *path = xasprintf("/images/%s", p->steps[i]);
		char *info = xasprintf("/images/%s/json", p->steps[i]);
		json_t *img = NULL;
		if (docker_call(d, "GET", info, NULL, &img, NULL) == 0 &&
		    json_array_size(json_object_get(img, "RepoTags")) == 0 &&
		    docker_call(d, "DELETE", path, NULL, NULL, NULL) == 0)
			removed++;
		json_decref(img);
		free(info);
		free(path);
	}
	if (removed > 0)
		runner_logf(p->r, "env",
		            "removed %d image(s) of the failed build", removed);
}

/* Build output: every "stream" line into the log as [env]. */
static int build_line(void *arg, json_t *obj, struct err *e)
{
	struct progress *p = arg;
	const char *s = json_string_value(json_object_get(obj, "stream"));
	const char *id = json_string_value(
	    json_object_get(json_object_get(obj, "aux"), "ID"));
	size_t n;

	if (progress_error(p, obj))
		return 0;
	if (id != NULL) {
		free(p->id);
		p->id = xstrdup(id);
	}
	while (s != NULL && *s) {
		n = strcspn(s, "\n");
		if (n > 0 && strspn(s, " \r\t") < n)
			runner_logf(p->r, "env", "%.*s", (int)n, s);
		build_step(p, s, n);
		s += n + (s[n] == '\n');
	}
	return 0;
}

static char *build_path(const char *dockerfile, const char *tag,
                        const char *key)
{
	char *labels = xasprintf("{\"tether.env\":\"%s\"}", key);
	char *ql = docker_urlencode(labels), *qt = docker_urlencode(tag);
	char *qd = docker_urlencode(dockerfile);
	char *path = xasprintf("/build?t=%s&dockerfile=%s&labels=%s&rm=1"
	                       "&forcerm=1",
	                       qt, qd, ql);

	free(labels);
	free(ql);
	free(qt);
	free(qd);
	return path;
}

int docker_image_build(struct docker *d, struct runner *r, FILE *context,
                       const char *dockerfile, const char *tag, const char *key,
                       struct err *e)
{
	struct progress p = {.r = r};
	struct stat st;
	struct docker_req q = {.method = "POST",
	                       .upload = context,
	                       .content_type = "application/x-tar",
	                       .timeout_ms = BUILD_TIMEOUT_MS};
	char *path = build_path(dockerfile, tag, key);
	int rc;

	if (fflush(context) != 0 || fstat(fileno(context), &st) < 0) {
		rc = err_sys(e, TERR_IO, "build context");
		goto out;
	}
	rewind(context);
	q.upload_size = st.st_size;
	q.path = path;
	rc = progress_request(d, &q, &p, build_line, "docker build", e);
	if (rc < 0)
		build_unwind(d, &p);
	if (rc < 0 && p.stop == NULL)
		err_wrap(e, "docker build %s", dockerfile);
out:
	progress_free(&p);
	free(path);
	return rc;
}
