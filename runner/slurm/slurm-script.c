/* slurm-script.c: the batch script, the env file and the sbatch argv.
 *
 * Job fields (argv, environment) reach a shell only as single-quoted words
 * in files of the attempt; sbatch itself is exec'd with an argv. */
#include "runner/slurm/slurm.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int slurm_quote(struct buf *b, const char *s, struct err *e)
{
	int r;

	if ((r = buf_append(b, "'", 1, e)) < 0)
		return r;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '\'')
			r = buf_append(b, "'\\''", 4, e);
		else
			r = buf_append(b, p, 1, e);
		if (r < 0)
			return r;
	}
	return buf_append(b, "'", 1, e);
}

/* Append "text" then the quoted word then "tail". */
static int put_word(struct buf *b, const char *text, const char *word,
                    const char *tail, struct err *e)
{
	int r;

	if ((r = buf_printf(b, e, "%s", text)) < 0 ||
	    (r = slurm_quote(b, word, e)) < 0)
		return r;
	return buf_printf(b, e, "%s", tail);
}

/* The job's command line, each word quoted, run in the background so that
 * the wrapper survives the signals it forwards. */
static int put_command(struct buf *b, char *const *argv, struct err *e)
{
	int r;

	for (size_t i = 0; argv[i] != NULL; i++) {
		if ((r = slurm_quote(b, argv[i], e)) < 0 ||
		    (r = buf_append(b, " ", 1, e)) < 0)
			return r;
	}
	return buf_printf(b, e, "&\n");
}

int slurm_script_batch(const struct slurm_paths *p, char *const *argv,
                       const char *workdir, struct buf *out, struct err *e)
{
	char *cwd = NULL, *tmp = xasprintf("%s.tmp", p->exit_file);
	int r;

	if (argv == NULL || argv[0] == NULL) {
		r = err_set(e, TERR_INVAL, "slurm: the job has no command");
		goto out;
	}
	cwd = workdir != NULL && *workdir != '\0'
	          ? xasprintf("%s/%s", p->work, workdir)
	          : xstrdup(p->work);
	if ((r = buf_printf(out, e,
	                    "#!/bin/sh\n"
	                    "# Tether batch wrapper, written by tether-runner "
	                    "(docs/slurm.md).\n")) < 0 ||
	    (r = put_word(out, ". ", p->env_file, " || exit 125\n", e)) < 0 ||
	    (r = put_word(out, "cd ", cwd, " || exit 125\n", e)) < 0 ||
	    (r = buf_printf(out, e, "trap : HUP TERM USR1 USR2 ALRM\n")) < 0 ||
	    (r = put_command(out, argv, e)) < 0 ||
	    (r = buf_printf(out, e,
	                    "tether_pid=$!\n"
	                    "while :; do\n"
	                    "\twait \"$tether_pid\"\n"
	                    "\ttether_rc=$?\n"
	                    "\tkill -0 \"$tether_pid\" 2>/dev/null || break\n"
	                    "done\n")) < 0 ||
	    (r = put_word(out, "printf '%s\\n' \"$tether_rc\" >", tmp, "", e)) <
	        0 ||
	    (r = put_word(out, " && /bin/mv -f ", tmp, " ", e)) < 0 ||
	    (r = put_word(out, "", p->exit_file, "\n", e)) < 0)
		goto out;
	r = buf_printf(out, e, "exit \"$tether_rc\"\n");
out:
	free(cwd);
	free(tmp);
	return r;
}

static bool env_name_ok(const char *s, size_t len)
{
	if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++) {
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	}
	return true;
}

/* value with a leading /tether/<dir> replaced by its host path. */
static char *env_host_value(const struct slurm_paths *p, const char *v)
{
	static const char *const names[] = {"/tether/work", "/tether/outputs",
	                                    "/tether/checkpoints"};
	const char *hosts[] = {p->work, p->outputs, p->checkpoints};

	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(names[i]);
		if (strncmp(v, names[i], n) == 0 &&
		    (v[n] == '\0' || v[n] == '/'))
			return xasprintf("%s%s", hosts[i], v + n);
	}
	return xstrdup(v);
}

int slurm_script_env(const struct slurm_paths *p, char *const *envp,
                     struct buf *out, struct err *e)
{
	int r = buf_printf(out, e, "# job environment (docs/slurm.md)\n");

	for (size_t i = 0; r == 0 && envp != NULL && envp[i] != NULL; i++) {
		const char *eq = strchr(envp[i], '=');
		char *name, *val, *word;

		if (eq == NULL || !env_name_ok(envp[i], (size_t)(eq - envp[i])))
			continue; /* sh cannot export it */
		name = strndup(envp[i], (size_t)(eq - envp[i]));
		val = env_host_value(p, eq + 1);
		word = xasprintf("%s=%s", name, val);
		r = put_word(out, "export ", word, "\n", e);
		freezero_str(word);
		freezero_str(val);
		free(name);
	}
	return r;
}

char *slurm_job_name(const char *job_id, const char *spec_name)
{
	char *name = xasprintf("tether-%s-%s", job_id,
	                       spec_name != NULL ? spec_name : "job");
	size_t skip = strlen(job_id) + 8;

	for (char *p = name + skip; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' &&
		    *p != '-')
			*p = '_';
	if (strlen(name) > SLURM_NAME_MAX)
		name[SLURM_NAME_MAX] = '\0';
	return name;
}

int64_t slurm_time_minutes(int64_t timeout_ms)
{
	if (timeout_ms <= 0)
		return 0;
	return (timeout_ms + 59999) / 60000;
}

struct argv_builder {
	char **v;
	size_t n;
};

static void argv_add(struct argv_builder *a, char *s)
{
	a->v[a->n++] = s;
}

static void argv_opt_str(struct argv_builder *a, const char *opt,
                         const char *val)
{
	if (val != NULL && *val != '\0')
		argv_add(a, xasprintf("--%s=%s", opt, val));
}

static void argv_opt_int(struct argv_builder *a, const char *opt, int64_t v,
                         const char *unit)
{
	if (v > 0)
		argv_add(a, xasprintf("--%s=%lld%s", opt, (long long)v, unit));
}

char **slurm_sbatch_argv(const struct slurm_submit *s)
{
	struct argv_builder a = {xcalloc(32, sizeof(char *)), 0};

	argv_add(&a, xstrdup("sbatch"));
	argv_add(&a, xstrdup("--parsable"));
	argv_add(&a, xstrdup("--export=NONE"));
	argv_add(&a, xstrdup("--no-requeue"));
	argv_add(&a, xstrdup("--open-mode=append"));
	argv_opt_str(&a, "job-name", s->job_name);
	argv_opt_str(&a, "output", s->output);
	argv_opt_str(&a, "chdir", s->chdir);
	argv_opt_str(&a, "partition", s->partition);
	argv_opt_str(&a, "account", s->account);
	argv_opt_str(&a, "qos", s->qos);
	argv_opt_int(&a, "nodes", s->nodes, "");
	argv_opt_int(&a, "ntasks", s->ntasks, "");
	argv_opt_int(&a, "cpus-per-task", s->cpus, "");
	argv_opt_int(&a, "mem", s->mem_mb, "M");
	if (s->gpus > 0)
		argv_add(&a, xasprintf("--gres=gpu:%lld", (long long)s->gpus));
	argv_opt_int(&a, "time", s->time_min, "");
	if (s->uid > 0) /* never --uid=0: root jobs are the default */
		argv_add(&a, xasprintf("--uid=%lld", (long long)s->uid));
	if (s->uid > 0 && s->gid >= 0)
		argv_add(&a, xasprintf("--gid=%lld", (long long)s->gid));
	argv_add(&a, xstrdup(s->script));
	return a.v;
}

int slurm_parse_jobid(const char *text, char out[64], struct err *e)
{
	size_t n = strspn(text, "0123456789");

	if (n == 0 || n >= 64 ||
	    (text[n] != '\0' && text[n] != ';' && text[n] != '\n'))
		return err_set(e, TERR_PROTO,
		               "sbatch: expected a job id, got '%.80s'", text);
	memcpy(out, text, n);
	out[n] = '\0';
	return 0;
}
