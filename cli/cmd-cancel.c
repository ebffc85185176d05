/* cmd-cancel.c: tether cancel JOB */
#include "cli/cli.h"
#include "common/util.h"

static int cmd_cancel(struct cmd_ctx *c, int argc, char **argv)
{
	char path[64];
	json_t *r = NULL;
	int64_t job;
	int rc;

	if (argc != 2 || (job = cli_parse_id(argv[1])) < 0)
		cli_usage_error("tether cancel", "expected one job id");
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/cancel",
	         (long long)job);
	if ((rc = api_json(c, "POST", path, NULL, &r)) != EXIT_OK)
		return rc;
	if (c->json)
		cli_print_json(r);
	else
		printf("job %lld: %s\n", (long long)job,
		       json_string_value(json_object_get(r, "state")));
	json_decref(r);
	return EXIT_OK;
}

const struct cmd_entry cmd_cancel_entry = {
    "cancel", "JOB", "cancel a job (queued: at once; running: via its agent)",
    cmd_cancel};
