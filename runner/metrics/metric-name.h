/* metric-name.h: the rule for a metric point's name, shared by the run
 * loop's parser (supervisor/metrics.c) and the TensorBoard reader
 * (tb-reader.c) (docs/metrics.md, docs/protocol.md "events"). */
#ifndef TETHER_METRIC_NAME_H
#define TETHER_METRIC_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define METRICS_NAME_MAX 128

/* 1-128 bytes of [A-Za-z0-9_.:/-]. */
bool metrics_name_ok(const char *s, size_t n);

#endif
