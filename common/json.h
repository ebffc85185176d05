/* json.h: strict helpers over jansson for untrusted JSON.
 *
 * Each getter names the field in its error ("resources.cpus: expected a
 * number"), so a 400 reply or a CLI error can say exactly what is wrong. */
#ifndef TETHER_JSON_H
#define TETHER_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct err;

/* Parse text (at most max_depth deep, valid UTF-8) into *out. */
int json_parse(const char *text, size_t len, size_t max_depth, json_t **out,
               struct err *e);
/* Fail when obj has a key not in the NULL-terminated list `allowed`.
 * `where` prefixes the field name in the error ("resources"). */
int json_check_keys(json_t *obj, const char *where, const char *const *allowed,
                    struct err *e);
/* Getters: missing and !required leaves *out untouched and returns 0. */
int json_get_str(json_t *obj, const char *where, const char *key, bool required,
                 size_t max_len, const char **out, struct err *e);
int json_get_int(json_t *obj, const char *where, const char *key, bool required,
                 int64_t min, int64_t max, int64_t *out, struct err *e);
int json_get_num(json_t *obj, const char *where, const char *key, bool required,
                 double min, double max, double *out, struct err *e);
int json_get_bool(json_t *obj, const char *where, const char *key,
                  bool required, bool *out, struct err *e);
/* Serialise compactly with sorted keys (canonical form); caller frees. */
char *json_dump_canon(const json_t *v);
/* json_dump_canon with reals at 15 significant digits: a value computed
 * as 300348 / 1000.0 is written 300.348, not 300.34800000000001.  For
 * records people read (events, result.json), never for hashed keys. */
char *json_dump_record(const json_t *v);

#endif
