/* runner-spec.c: the runner settings of spec.json (read by
 * common/attempt-spec.c) as the runner uses them, the job's argv and its
 * clean environment, and freeing a struct runner. */
#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "runner/env/env.h"
#include "runner/launcher.h"
#include "runner/runner.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_PATH                                                           \
	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ENV_MAX  4096
#define GPUS_MAX 64

/* The launcher kind of r->set and the job's dirs. */
int runner_settings_load(struct runner *r, struct err *e)
{
	const struct attempt_settings *s = &r->set;

	for (int k = LAUNCHER_SANDBOX; k <= LAUNCHER_SPARK; k++)
		if (strcmp(s->launcher, jobspec_launcher_name(k)) == 0)
			r->launcher = (enum launcher_kind)k;
	snprintf(r->state.launcher, sizeof(r->state.launcher), "%s",
	         s->launcher);
	r->work_dir = xasprintf("%s/work", r->dir);
	r->outputs_dir = xasprintf("%s/outputs", r->dir);
	r->checkpoints_dir = xasprintf("%s/checkpoints", r->dir);
	r->ops = launcher_for(r->launcher);
	if (r->ops == NULL)
		return err_set(e, TERR_UNSUPP,
		               "launcher '%s' is not built into this runner",
		               jobspec_launcher_name(r->launcher));
	return 0;
}

struct envb {
	char **v;
	size_t n;
};

/* Set NAME=value, replacing an earlier NAME. */
static void env_set(struct envb *b, const char *name, const char *value)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < b->n; i++)
		if (strncmp(b->v[i], name, len) == 0 && b->v[i][len] == '=') {
			freezero_str(b->v[i]);
			b->v[i] = xasprintf("%s=%s", name, value);
			return;
		}
	if (b->n + 1 < ENV_MAX)
		b->v[b->n++] = xasprintf("%s=%s", name, value);
}

static void env_put(struct envb *b, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char *name;

	if (eq == NULL)
		return;
	name = xcalloc(1, (size_t)(eq - kv) + 1);
	memcpy(name, kv, (size_t)(eq - kv));
	env_set(b, name, eq + 1);
	free(name);
}

static char *path_value(struct runner *r)
{
	char *path = xstrdup(DEFAULT_PATH), *next;
	size_t n = 0;

	while (r->env.path_prepend != NULL && r->env.path_prepend[n] != NULL)
		n++;
	while (n-- > 0) {
		next = xasprintf("%s:%s", r->env.path_prepend[n], path);
		free(path);
		path = next;
	}
	return path;
}

static void gpu_vars(struct runner *r, struct envb *b)
{
	int gpus[GPUS_MAX];
	size_t n = runner_gpus(r, gpus, GPUS_MAX), off = 0;
	char list[GPUS_MAX * 12] = "";

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d",
		                        i ? "," : "", gpus[i]);
	env_set(b, "CUDA_VISIBLE_DEVICES", list);
	env_set(b, "NVIDIA_VISIBLE_DEVICES", list);
}

int runner_build_job(struct runner *r, struct err *e)
{
	struct envb b = {xcalloc(ENV_MAX, sizeof(char *)), 0};
	char *path = path_value(r), num[32];
	size_t i;

	r->argv = xcalloc(r->spec->argc + 1, sizeof(char *));
	for (i = 0; i < r->spec->argc; i++)
		r->argv[i] = xstrdup(r->spec->argv[i]);
	env_set(&b, "PATH", path);
	env_set(&b, "HOME", "/tmp");
	env_set(&b, "TETHER_JOB_ID", r->job_id);
	snprintf(num, sizeof(num), "%lld", (long long)r->attempt);
	env_set(&b, "TETHER_ATTEMPT", num);
	env_set(&b, "TETHER_WORK", "/tether/work");
	env_set(&b, "TETHER_OUTPUTS", "/tether/outputs");
	env_set(&b, "TETHER_CHECKPOINTS", "/tether/checkpoints");
	if (r->resumed)
		env_set(&b, "TETHER_RESUME", "1");
	gpu_vars(r, &b);
	for (i = 0; r->env.vars != NULL && r->env.vars[i] != NULL; i++)
		env_put(&b, r->env.vars[i]);
	for (i = 0; i < r->spec->nenv; i++)
		env_set(&b, r->spec->env_vars[i].key,
		        r->spec->env_vars[i].value);
	for (i = 0; i < r->spec->nsecrets; i++)
		env_set(&b, r->spec->secrets[i].key, r->spec->secrets[i].value);
	/* last: the job's env cannot move its rank (docs/multi-node.md) */
	for (i = 0; r->rdv_vars != NULL && r->rdv_vars[i] != NULL; i++)
		env_put(&b, r->rdv_vars[i]);
	free(path);
	r->envp = b.v;
	(void)e;
	return 0;
}

void runner_free(struct runner *r)
{
	runner_strv_free(r->argv);
	runner_strv_freezero(r->envp);
	runner_strv_free(r->rdv_vars);
	env_result_free(&r->env);
	free(r->commit);
	free(r->work_dir);
	free(r->outputs_dir);
	free(r->checkpoints_dir);
	jobspec_free(r->spec);
	attempt_settings_free(&r->set);
	free(r->job_id);
	free(r->dir);
	memset(r, 0, sizeof(*r));
}
