/* util.h: checked number parsing, durations, sizes, small string helpers. */
#ifndef TETHER_UTIL_H
#define TETHER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/* Parse a whole decimal integer within [min, max]; no trailing junk. */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out,
              struct err *e);
/* Parse a non-negative decimal number ("0.5", "2"); no trailing junk. */
int parse_double(const char *s, double min, double max, double *out,
                 struct err *e);
/* Parse a duration: "30", "30s", "1500ms", "5m", "2h", "1d" -> milliseconds. */
int parse_duration_ms(const char *s, int64_t *out_ms, struct err *e);
/* Parse a size: "512", "64K", "4M", "2G", "1T" (powers of 1024) -> bytes. */
int parse_size(const char *s, int64_t *out, struct err *e);
/* Boolean: yes/no, true/false, on/off, 1/0. */
int parse_bool(const char *s, bool *out, struct err *e);

/* Monotonic and wall clock in milliseconds. */
int64_t now_mono_ms(void);
int64_t now_wall_ms(void);

/* strdup that aborts on failure (allocation failure is not recoverable here).
 */
char *xstrdup(const char *s);
void *xcalloc(size_t n, size_t size);
/* printf into a fresh heap string; aborts on allocation failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Zero then free (for secrets).  Accepts NULL. */
void freezero(void *p, size_t len);
void freezero_str(char *s);

/* Levenshtein distance, for "did you mean" suggestions. */
size_t str_distance(const char *a, const char *b);
/* True when cand is a likely typo fix for word (close for its length) and
 * closer than *best, which it then takes; start *best at SIZE_MAX. */
bool str_near(const char *word, const char *cand, size_t *best);
/* The "did you mean" of word among the NULL-terminated names, or NULL. */
const char *str_nearest(const char *word, const char *const *names);
/* s with backslashes, double quotes and control characters escaped (\n,
 * \x1b, \"), cut with "..." to fit size: client text quoted in messages
 * and logs. */
const char *str_escape(const char *s, char *out, size_t size);
/* The same for control characters only: a message made one line. */
const char *str_escape_ctl(const char *s, char *out, size_t size);

/* True when s is valid UTF-8 of length len. */
bool utf8_valid(const char *s, size_t len);

/* Copy the value of key= in a "Key=value Key=value" record (scontrol -o
 * style; a key starts the text or follows a space or newline) into out, up
 * to the next space or newline, truncated to size; false when absent. */
bool str_kv_field(const char *text, const char *key, char *out, size_t size);

/* One-line usage error on stderr ("prog: msg; see 'prog --help'"), exit 2.
 * Mains set opterr = 0 and call this for getopt's '?'. */
void cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/* The text of the option getopt_long rejected, for cli_usage_error. */
const char *cli_bad_option(int argc, char **argv);

#endif
