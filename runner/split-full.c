/* split-full.c: linked into tether-runner-full only (split.h). */
#include "runner/split.h"

const bool runner_is_full = true;
