/* cmd-run.c: `tether-runner run DIR` runs the attempt in DIR (spec.json)
 * to result.json (supervisor.c, docs/state-dir.md); `pack-checkpoint DIR`
 * packs DIR/checkpoints for upload (supervisor-pack.c,
 * docs/checkpointing.md). */
#include "runner/cmd.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/supervisor/supervisor.h"

#include <limits.h>
#include <stdlib.h>

/* The attempt directory argv[1] as an absolute path into dir. */
static int attempt_dir(struct cmd_ctx *c, int argc, char **argv,
                       char dir[PATH_MAX])
{
	if (argc != 2)
		cli_usage_error(c->prog, "%s needs one attempt directory",
		                argv[0]);
	if (realpath(argv[1], dir) == NULL) {
		log_error_errno("attempt directory %s", argv[1]);
		return -1;
	}
	return 0;
}

static int cmd_run(struct cmd_ctx *c, int argc, char **argv)
{
	char dir[PATH_MAX];

	if (attempt_dir(c, argc, argv, dir) < 0)
		return 1;
	return supervisor_run(dir);
}

static int cmd_pack_checkpoint(struct cmd_ctx *c, int argc, char **argv)
{
	char dir[PATH_MAX];
	struct err e = {0};

	if (attempt_dir(c, argc, argv, dir) < 0)
		return 1;
	if (supervisor_pack(dir, &e) < 0) {
		log_error("%s: pack checkpoint: %s", dir, e.msg);
		return 1;
	}
	return 0;
}

const struct cmd_entry cmd_run_entry = {
    "run", "DIR", "run the attempt in DIR (spec.json) to result.json", cmd_run};
const struct cmd_entry cmd_pack_checkpoint_entry = {
    "pack-checkpoint", "DIR",
    "pack DIR/checkpoints into checkpoint-out.<sha256>.tar.gz",
    cmd_pack_checkpoint};
