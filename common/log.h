/* log.h: one logger for every Tether binary.
 *
 * Lines go to stderr (journald keeps them under systemd) as
 *   2026-11-28T11:47:48.123Z level=info fn=queue_push msg="..." k=v ...
 * Callers put key=value pairs (job=42 attempt=1) into the message. */
#ifndef TETHER_LOG_H
#define TETHER_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
/* Parse "error", "warn", "info", "debug"; returns 0 or TERR_INVAL. */
int log_parse_level(const char *s, enum log_level *out);
void log_set_prog(const char *prog);

void log_emit(enum log_level level, const char *fn, int with_errno,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_fatal(const char *fn, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define log_error(...)       log_emit(LOG_ERROR, __func__, 0, __VA_ARGS__)
#define log_error_errno(...) log_emit(LOG_ERROR, __func__, 1, __VA_ARGS__)
#define log_warn(...)        log_emit(LOG_WARN, __func__, 0, __VA_ARGS__)
#define log_warn_errno(...)  log_emit(LOG_WARN, __func__, 1, __VA_ARGS__)
#define log_info(...)        log_emit(LOG_INFO, __func__, 0, __VA_ARGS__)
#define log_debug(...)       log_emit(LOG_DEBUG, __func__, 0, __VA_ARGS__)
/* fatal: with errno text; fatalx: without.  Both exit(1). */
#define fatal(...)  log_fatal(__func__, 1, __VA_ARGS__)
#define fatalx(...) log_fatal(__func__, 0, __VA_ARGS__)

#endif
