#include "common/conf.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/util.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"string",   "integer", "boolean",
                                         "duration", "size",    "number"};

static const struct conf_key *conf_find(const struct conf_key *table,
                                        const char *key)
{
	for (; table->name != NULL; table++)
		if (strcmp(table->name, key) == 0)
			return table;
	return NULL;
}

static const char *conf_nearest(const struct conf_key *table, const char *key)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	for (; table->name != NULL; table++)
		if (str_near(key, table->name, &best_d))
			best = table->name;
	return best;
}

static int conf_apply(const struct conf_key *k, void *obj, const char *value,
                      struct err *e)
{
	char *field = (char *)obj + k->offset;
	int64_t i;
	double d;
	bool b;
	int r = 0;

	switch (k->type) {
	case CONF_STR:
		free(*(char **)field);
		*(char **)field = value ? xstrdup(value) : NULL;
		return 0;
	case CONF_INT:
		r = parse_i64(value, k->min, k->max, &i, e);
		break;
	case CONF_DURATION:
		r = parse_duration_ms(value, &i, e);
		break;
	case CONF_SIZE:
		r = parse_size(value, &i, e);
		break;
	case CONF_BOOL:
		if ((r = parse_bool(value, &b, e)) == 0)
			*(bool *)field = b;
		return r;
	case CONF_DOUBLE:
		if ((r = parse_double(value, (double)k->min, (double)k->max, &d,
		                      e)) == 0)
			*(double *)field = d;
		return r;
	}
	if (r == 0)
		*(int64_t *)field = i;
	return r;
}

int conf_defaults(const struct conf_key *table, void *obj, struct err *e)
{
	for (const struct conf_key *k = table; k->name != NULL; k++) {
		if (k->def == NULL && k->type == CONF_STR)
			continue;
		if (conf_apply(k, obj, k->def ? k->def : "0", e) < 0)
			return err_wrap(e, "default of %s", k->name);
	}
	return 0;
}

int conf_set(const struct conf_key *table, void *obj, const char *key,
             const char *value, const char *where, struct err *e)
{
	const struct conf_key *k = conf_find(table, key);
	const char *near;

	if (k == NULL) {
		near = conf_nearest(table, key);
		if (near != NULL)
			return err_set(e, TERR_INVAL,
			               "%s: unknown key '%s' "
			               "(did you mean '%s'?)",
			               where, key, near);
		return err_set(e, TERR_INVAL, "%s: unknown key '%s'", where,
		               key);
	}
	if (conf_apply(k, obj, value, e) < 0)
		return err_wrap(e, "%s: %s", where, key);
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int conf_load_file(const struct conf_key *table, void *obj, const char *path,
                   struct err *e)
{
	char *text = NULL, *line, *next, where[512];
	int r, lineno = 0;

	if ((r = file_read_all(path, 1 << 20, &text, NULL, e)) < 0)
		return r;
	for (line = text; line != NULL; line = next) {
		char *eq, *key, *value;
		size_t vl;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		snprintf(where, sizeof(where), "%s line %d", path, lineno);
		line = trim(line);
		if (*line == '\0' || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (eq == NULL) {
			r = err_set(e, TERR_INVAL, "%s: expected 'key = value'",
			            where);
			break;
		}
		*eq = '\0';
		key = trim(line);
		value = trim(eq + 1);
		vl = strlen(value);
		if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
			value[vl - 1] = '\0';
			value++;
		}
		if ((r = conf_set(table, obj, key, value, where, e)) < 0)
			break;
	}
	free(text);
	return r;
}

int conf_load_env(const struct conf_key *table, void *obj, const char *prefix,
                  struct err *e)
{
	char name[256];

	for (const struct conf_key *k = table; k->name != NULL; k++) {
		size_t n = (size_t)snprintf(name, sizeof(name), "%s", prefix);
		const char *v;
		for (const char *p = k->name; *p && n + 1 < sizeof(name); p++)
			name[n++] = *p == '.' ? '_' : (char)toupper(*p);
		name[n] = '\0';
		v = getenv(name);
		if (v == NULL)
			continue;
		char where[300];
		snprintf(where, sizeof(where), "environment %s", name);
		if (conf_apply(k, obj, v, e) < 0)
			return err_wrap(e, "%s", where);
	}
	return 0;
}

void conf_print_help(const struct conf_key *table, FILE *f)
{
	for (const struct conf_key *k = table; k->name != NULL; k++)
		fprintf(f, "  %-24s %-8s default: %-10s %s\n", k->name,
		        type_names[k->type], k->def ? k->def : "(none)",
		        k->help);
}

void conf_print_markdown(const struct conf_key *table, FILE *f)
{
	fprintf(f, "| key | type | default | meaning |\n|---|---|---|---|\n");
	for (const struct conf_key *k = table; k->name != NULL; k++)
		fprintf(f, "| `%s` | %s | `%s` | %s |\n", k->name,
		        type_names[k->type], k->def ? k->def : "", k->help);
}

void conf_free(const struct conf_key *table, void *obj)
{
	for (const struct conf_key *k = table; k->name != NULL; k++) {
		if (k->type == CONF_STR) {
			char **p = (char **)((char *)obj + k->offset);
			free(*p);
			*p = NULL;
		}
	}
}
