/* cmdrun.h: run a helper command (an argv, never a shell string) and
 * capture what it prints, with a deadline.  Used for the Slurm commands
 * (sbatch, squeue, scontrol, scancel, sinfo). */
#ifndef TETHER_CMDRUN_H
#define TETHER_CMDRUN_H

#include <stdint.h>

struct buf;
struct err;

/* Run argv (argv[0] looked up on PATH) with stdin from /dev/null, stdout
 * into out and stderr into errb (either may be NULL: discarded; each is
 * capped by its max, the rest dropped), killing it after timeout_ms (0: no
 * limit).  *status gets the exit code, 128+signal when killed, or -1 when
 * the status was reaped elsewhere.  Fails (TERR_IO, TERR_TIMEOUT) only when
 * it could not run or ran past the deadline; a non-zero exit is not an
 * error here. */
int cmd_capture(const char *const *argv, struct buf *out, struct buf *errb,
                int64_t timeout_ms, int *status, struct err *e);

#endif
