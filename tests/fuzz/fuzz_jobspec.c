/* fuzz_jobspec.c: the job spec parser (common/jobspec.c), which the
 * workspace, the CLI, the agent and the runner all run on untrusted JSON.
 *
 * Beyond "no crash, no leak, no UB", an accepted spec must keep the
 * promises later code relies on: argv is NULL-terminated and non-empty,
 * the name has no control characters, environment names are identifiers,
 * and every path that lands in the job's tree is safe and relative. */
#include "common/err.h"
#include "common/jobspec.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void check_str(const char *s)
{
	if (s == NULL)
		return;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

static void check_spec(const struct jobspec *s)
{
	if (s->argc == 0 || s->argv == NULL || s->argv[s->argc] != NULL)
		abort();
	if (s->name == NULL || s->name[0] == '\0')
		abort();
	check_str(s->name);
	check_str(s->source.url);
	check_str(s->source.ref);
	if (s->source.url != NULL && s->source.url[0] == '-')
		abort();
	if (s->source.ref != NULL && s->source.ref[0] == '-')
		abort();
	if (s->workdir != NULL && !path_is_safe_relative(s->workdir))
		abort();
	if (s->env.requirements_file != NULL &&
	    !path_is_safe_relative(s->env.requirements_file))
		abort();
	if (s->env.conda_file != NULL &&
	    !path_is_safe_relative(s->env.conda_file))
		abort();
	if (s->env.dockerfile != NULL &&
	    !path_is_safe_relative(s->env.dockerfile))
		abort();
	for (size_t i = 0; i < s->nenv; i++) {
		const char *k = s->env_vars[i].key;
		if (!(isalpha((unsigned char)k[0]) || k[0] == '_'))
			abort();
		for (const char *p = k; *p; p++)
			if (!(isalnum((unsigned char)*p) || *p == '_'))
				abort();
	}
	for (size_t i = 0; i < s->nmounts; i++)
		if (s->mounts[i].source[0] != '/' ||
		    s->mounts[i].target[0] != '/' ||
		    strstr(s->mounts[i].target, "/../") != NULL)
			abort();
	(void)jobspec_launcher_name(s->launcher);
	(void)jobspec_env_name(s->env.kind);
	for (size_t i = 0; i < s->nsecrets; i++)
		if (jobspec_secret(s, s->secrets[i].key) == NULL)
			abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct jobspec *s = NULL;
	struct err e = {0};

	if (jobspec_parse((const char *)data, size, &s, &e) == 0)
		check_spec(s);
	else if (e.msg[0] == '\0')
		abort(); /* every refusal says why */
	jobspec_free(s);
	return 0;
}
