/* conf.h: configuration from one keyword table.
 *
 * Each binary declares one table of struct conf_key rows (name, type,
 * default, help, offset into its config struct).  The same table drives the
 * file parser ("key = value", '#' comments), TETHER_* environment
 * overrides, command-line --set key=value, --help output and the generated
 * configuration reference, so none of them can drift apart. */
#ifndef TETHER_CONF_H
#define TETHER_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct err;

enum conf_type {
	CONF_STR,      /* char * (heap) */
	CONF_INT,      /* int64_t within [min, max] */
	CONF_BOOL,     /* bool */
	CONF_DURATION, /* int64_t milliseconds ("30s", "5m") */
	CONF_SIZE,     /* int64_t bytes ("4G") */
	CONF_DOUBLE,   /* double within [min, max] */
};

struct conf_key {
	const char *name;
	enum conf_type type;
	const char *def; /* default as text; NULL = unset (STR only) */
	size_t offset;   /* offsetof(struct yourconf, field) */
	int64_t min, max;
	const char *help;
};

/* Apply every default. */
int conf_defaults(const struct conf_key *table, void *obj, struct err *e);
/* Set one key from text; `where` is "file:line" or "env TETHER_X". */
int conf_set(const struct conf_key *table, void *obj, const char *key,
             const char *value, const char *where, struct err *e);
/* Parse a file; errors say "path line N: ...". Missing file: TERR_NOTFOUND. */
int conf_load_file(const struct conf_key *table, void *obj, const char *path,
                   struct err *e);
/* Apply PREFIX<KEY> variables (key upper-cased, '.' -> '_'). */
int conf_load_env(const struct conf_key *table, void *obj, const char *prefix,
                  struct err *e);
/* Print "key (type, default X): help" lines, or a markdown table. */
void conf_print_help(const struct conf_key *table, FILE *f);
void conf_print_markdown(const struct conf_key *table, FILE *f);
/* Free the strings of a config struct. */
void conf_free(const struct conf_key *table, void *obj);

#endif
