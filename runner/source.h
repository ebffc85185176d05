/* source.h: fetching a job's code into r->work_dir (git via libgit2, a
 * workspace snapshot, or a local directory for local submits). */
#ifndef TETHER_SOURCE_H
#define TETHER_SOURCE_H

#include "runner/runner.h"

struct err;

/* Fill r->work_dir from the spec's source and set r->commit for git.
 * Failure means the attempt ends source_failed with a clear reason. */
int source_fetch(struct runner *r, struct err *e);

#endif
