/* cmd-submit.c: `tether-agent submit job.json`: queue a local job (id L<n>)
 * in agent.db, without a workspace.  A job larger than the node is refused
 * here, not queued forever. */
#include "agent/agent.h"
#include "agent/cmd.h"
#include "agent/creds.h"
#include "agent/db.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static int cmd_submit_main(struct cmd_ctx *c, int argc, char **argv)
{
	struct agent a = {0};
	struct jobspec *s = NULL;
	struct err e = {0};
	char *text = NULL, *id = NULL, *why = NULL;
	sqlite3 *db = NULL;
	size_t len;
	pid_t pid;
	int rc = 1;

	if (argc != 1) {
		fprintf(stderr, "usage: tether-agent submit JOB.json\n");
		return 2;
	}
	a.conf = c->conf;
	if (file_read_all(argv[0], 1 << 20, &text, &len, &e) < 0 ||
	    jobspec_parse(text, len, &s, &e) < 0 ||
	    capacity_detect(&a.conf, &a.cap, &e) < 0) {
		fprintf(stderr, "tether-agent: %s: %s\n", argv[0], e.msg);
		goto out;
	}
	if (s->checkpoint.resume_from > 0) {
		fprintf(stderr,
		        "tether-agent: %s: checkpoint.resume_from: "
		        "checkpoints are kept by a workspace; submit "
		        "there (tether submit --resume-from)\n",
		        argv[0]);
		goto out;
	}
	if (s->nodes > 1) {
		fprintf(
		    stderr,
		    "tether-agent: %s: nodes: a local job runs on this node "
		    "only; submit a multi-node job to a workspace\n",
		    argv[0]);
		goto out;
	}
	why = queue_too_big_spec(&a, s);
	if (why == NULL)
		why = queue_disk_too_big(&c->conf, s->resources.disk);
	if (why != NULL) {
		fprintf(stderr, "tether-agent: job refused: %s\n", why);
		goto out;
	}
	if ((db = cmd_open_db(c)) == NULL)
		goto out;
	if (queue_submit_local(db, text, s->resources.cpus, s->resources.memory,
	                       s->resources.gpus, s->priority, &id, &e) < 0) {
		fprintf(stderr, "tether-agent: %s\n", e.msg);
		goto out;
	}
	printf("%s\n", id);
	pid = creds_lock_holder(c->conf.state_dir);
	if (pid > 0)
		kill(pid, SIGUSR2);
	rc = 0;
out:
	db_close(db);
	jobspec_free(s);
	free(text);
	free(id);
	free(why);
	return rc;
}

const struct cmd_entry cmd_submit = {
    "submit", "JOB.json", "queue a local job (id L<n>)", cmd_submit_main};
