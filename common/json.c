#include "common/json.h"
#include "common/err.h"
#include "common/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t json_depth(json_t *v, size_t limit)
{
	size_t max = 0, d;
	const char *key;
	json_t *child;
	size_t i;

	if (limit == 0)
		return 1;
	if (json_is_object(v)) {
		json_object_foreach(v, key, child)
		{
			d = json_depth(child, limit - 1);
			if (d > max)
				max = d;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, child)
		{
			d = json_depth(child, limit - 1);
			if (d > max)
				max = d;
		}
		return max + 1;
	}
	return 0;
}

int json_parse(const char *text, size_t len, size_t max_depth, json_t **out,
               struct err *e)
{
	json_error_t je;
	json_t *v;

	if (!utf8_valid(text, len))
		return err_set(e, TERR_INVAL, "body is not valid UTF-8");
	v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (v == NULL)
		return err_set(e, TERR_INVAL,
		               "invalid JSON at line %d column "
		               "%d: %s",
		               je.line, je.column, je.text);
	if (json_depth(v, max_depth + 1) > max_depth) {
		json_decref(v);
		return err_set(e, TERR_INVAL, "JSON nested deeper than %zu",
		               max_depth);
	}
	*out = v;
	return 0;
}

static void field_name(char *buf, size_t size, const char *where,
                       const char *key)
{
	if (where != NULL && *where != '\0')
		snprintf(buf, size, "%s.%s", where, key);
	else
		snprintf(buf, size, "%s", key);
}

/* "resources.cpu: unknown field (did you mean resources.cpus?)", the key
 * escaped in the message and named raw in the error's field. */
static int unknown_field(const char *where, const char *key,
                         const char *const *allowed, struct err *e)
{
	const char *near = str_nearest(key, allowed);
	char name[256], shown[256], hint[300] = "";

	field_name(name, sizeof(name), where, key);
	str_escape(name, shown, sizeof(shown));
	if (near != NULL) {
		char full[256];
		field_name(full, sizeof(full), where, near);
		snprintf(hint, sizeof(hint), " (did you mean %s?)", full);
	}
	return err_set_field(e, TERR_INVAL, name, "%s: unknown field%s", shown,
	                     hint);
}

int json_check_keys(json_t *obj, const char *where, const char *const *allowed,
                    struct err *e)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return err_set(e, TERR_INVAL, "%s: expected an object",
		               where && *where ? where : "body");
	json_object_foreach(obj, key, v)
	{
		size_t i;
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			return unknown_field(where, key, allowed, e);
	}
	return 0;
}

static json_t *get_field(json_t *obj, const char *where, const char *key,
                         bool required, char *name, size_t size, int *r,
                         struct err *e)
{
	json_t *v = json_object_get(obj, key);

	field_name(name, size, where, key);
	*r = 0;
	if (v == NULL || json_is_null(v)) {
		if (required)
			*r = err_set(e, TERR_INVAL,
			             "%s: required field is "
			             "missing",
			             name);
		return NULL;
	}
	return v;
}

int json_get_str(json_t *obj, const char *where, const char *key, bool required,
                 size_t max_len, const char **out, struct err *e)
{
	char name[256];
	int r;
	json_t *v =
	    get_field(obj, where, key, required, name, sizeof(name), &r, e);

	if (v == NULL)
		return r;
	if (!json_is_string(v))
		return err_set(e, TERR_INVAL, "%s: expected a string", name);
	if (json_string_length(v) > max_len)
		return err_set(e, TERR_INVAL, "%s: longer than %zu bytes", name,
		               max_len);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return err_set(e, TERR_INVAL, "%s: contains a NUL byte", name);
	*out = json_string_value(v);
	return 0;
}

int json_get_int(json_t *obj, const char *where, const char *key, bool required,
                 int64_t min, int64_t max, int64_t *out, struct err *e)
{
	char name[256];
	int r;
	json_int_t i;
	json_t *v =
	    get_field(obj, where, key, required, name, sizeof(name), &r, e);

	if (v == NULL)
		return r;
	if (!json_is_integer(v))
		return err_set(e, TERR_INVAL, "%s: expected an integer", name);
	i = json_integer_value(v);
	if (i < min || i > max)
		return err_set(e, TERR_INVAL,
		               "%s: %lld is out of range "
		               "[%lld, %lld]",
		               name, (long long)i, (long long)min,
		               (long long)max);
	*out = i;
	return 0;
}

int json_get_num(json_t *obj, const char *where, const char *key, bool required,
                 double min, double max, double *out, struct err *e)
{
	char name[256];
	int r;
	double d;
	json_t *v =
	    get_field(obj, where, key, required, name, sizeof(name), &r, e);

	if (v == NULL)
		return r;
	if (!json_is_number(v))
		return err_set(e, TERR_INVAL, "%s: expected a number", name);
	d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max)
		return err_set(e, TERR_INVAL, "%s: %g is out of range [%g, %g]",
		               name, d, min, max);
	*out = d;
	return 0;
}

int json_get_bool(json_t *obj, const char *where, const char *key,
                  bool required, bool *out, struct err *e)
{
	char name[256];
	int r;
	json_t *v =
	    get_field(obj, where, key, required, name, sizeof(name), &r, e);

	if (v == NULL)
		return r;
	if (!json_is_boolean(v))
		return err_set(e, TERR_INVAL, "%s: expected true or false",
		               name);
	*out = json_is_true(v);
	return 0;
}

/* json_dumps, which fails only when out of memory. */
static char *dump(const json_t *v, size_t flags)
{
	char *s = json_dumps(v, flags);

	if (s == NULL)
		abort();
	return s;
}

char *json_dump_record(const json_t *v)
{
	return dump(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
	                   JSON_REAL_PRECISION(15));
}

char *json_dump_canon(const json_t *v)
{
	return dump(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}
