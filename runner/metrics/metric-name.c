/* metric-name.c: see metric-name.h. */
#include "runner/metrics/metric-name.h"

#include <ctype.h>
#include <string.h>

bool metrics_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > METRICS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isascii((unsigned char)s[i]) ||
		    !(isalnum((unsigned char)s[i]) || strchr("_.:/-", s[i])))
			return false;
	return true;
}
