/* Transitional (issue 21): the CLI moved to cli/.  cmd-status.c,
 * cmd-submit.c and pack.c still include this path until the branches that
 * edit them land; new code includes cli/cli.h.  Remove once none does. */
#include "cli/cli.h"
