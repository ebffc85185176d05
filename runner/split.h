/* split.h: the runner comes as two programs built from the same code
 * (docs/architecture.md, "The runner's two programs").
 *
 *   tether-runner        what the agent starts: every job whose source,
 *                        environment and launcher are on the node (no
 *                        source or a local path; no, a venv or a conda
 *                        environment; the sandbox or Slurm), linked with
 *                        jansson, libcrypto, libcgroup and libpcre2-8
 *                        (the metrics regex; in every Debian system: grep
 *                        needs it) only.
 *   tether-runner-full   the same plus the families that need libgit2,
 *                        libarchive, libcurl and libprotobuf-c: git and
 *                        snapshot sources, checkpoint archives, the docker
 *                        and spark launchers, docker environments, the
 *                        TensorBoard reader (metrics.tensorboard), and
 *                        every other command.
 *
 * tether-runner decides from the spec before it writes anything and
 * replaces itself (execv) with tether-runner-full when the attempt needs
 * it; in it, the heavy families' entry points are placeholders
 * (split-lite.c) that the decision keeps from being called. */
#ifndef TETHER_RUNNER_SPLIT_H
#define TETHER_RUNNER_SPLIT_H

#include <stdbool.h>

struct err;
struct runner;

/* true in tether-runner-full (split-full.c), false in tether-runner. */
extern const bool runner_is_full;

/* Why attempt r needs tether-runner-full ("a git source", ...), or NULL. */
const char *runner_needs_full(const struct runner *r);

/* Path of tether-runner-full: beside this program, else in TETHER_BINDIR
 * (heap string). */
char *runner_full_path(void);

/* Replace this process with tether-runner-full, same arguments.  Returns
 * only on failure (e says why). */
int runner_exec_full(char **argv, struct err *e);

/* Run `tether-runner-full args...` and wait for it; 0 when it exits 0. */
int runner_run_full(const char *const *args, struct err *e);

#endif
