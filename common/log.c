#include "common/log.h"
#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level log_level = LOG_INFO;
static const char *log_prog = "tether";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	log_level = level;
}

void log_set_prog(const char *prog)
{
	log_prog = prog;
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return TERR_INVAL;
}

static void log_vemit(enum log_level level, const char *fn, int with_errno,
                      const char *fmt, va_list ap)
{
	char line[4096], msg[4096], stamp[32];
	struct timespec ts;
	struct tm tm;
	int saved = errno;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = (size_t)snprintf(line, sizeof(line), "%s.%03ldZ %s level=%s fn=%s ",
	                     stamp, ts.tv_nsec / 1000000L, log_prog,
	                     level_names[level], fn);
	/* one event, one line: text a client set cannot start a line of its
	 * own (control characters are escaped) */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < sizeof(line)) {
		str_escape_ctl(msg, line + n, sizeof(line) - n);
		n += strlen(line + n);
	}
	if (with_errno && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		                      " errno=\"%s\"", strerror(saved));
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
	errno = saved;
}

void log_emit(enum log_level level, const char *fn, int with_errno,
              const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_vemit(level, fn, with_errno, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fn, int with_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_ERROR, fn, with_errno, fmt, ap);
	va_end(ap);
	exit(1);
}
