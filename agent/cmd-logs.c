/* cmd-logs.c: `tether-agent logs JOB [-f]` and `tether-agent outputs JOB`,
 * read straight from the attempt directory. */
#include "agent/cmd.h"

#include "common/attempt.h"
#include "common/fileio.h"
#include "common/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

char *cmd_attempt_dir(struct cmd_ctx *c, const char *job)
{
	char *jdir = xasprintf("%s/jobs/%s", c->conf.state_dir, job);
	DIR *d = strchr(job, '/') ? NULL : opendir(jdir);
	struct dirent *de;
	int64_t best = 0, n;
	char *out = NULL;

	if (d == NULL) {
		fprintf(stderr, "tether-agent: no job %s on this node\n", job);
		goto out;
	}
	while ((de = readdir(d)) != NULL)
		if (parse_i64(de->d_name, 1, INT32_MAX, &n, NULL) == 0 &&
		    n > best)
			best = n;
	closedir(d);
	if (best == 0)
		fprintf(stderr, "tether-agent: job %s has no attempt\n", job);
	else
		out = xasprintf("%s/%lld", jdir, (long long)best);
out:
	free(jdir);
	return out;
}

/* Copy new bytes of fd to stdout; returns bytes copied. */
static ssize_t cmd_copy(int fd)
{
	char buf[65536];
	ssize_t n, total = 0;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return -1;
		total += n;
	}
	fflush(stdout);
	return total;
}

static int cmd_logs_main(struct cmd_ctx *c, int argc, char **argv)
{
	char *dir, *log;
	int fd, ino = -1, rc = 0;

	if (argc != 1) {
		fprintf(stderr, "usage: tether-agent logs JOB [-f]\n");
		return 2;
	}
	if ((dir = cmd_attempt_dir(c, argv[0])) == NULL)
		return 1;
	log = attempt_path(dir, ATTEMPT_LOG);
	if (c->follow) {
		ino = inotify_init1(IN_CLOEXEC);
		inotify_add_watch(ino, dir,
		                  IN_MODIFY | IN_MOVED_TO | IN_CREATE);
	}
	fd = open(log, O_RDONLY | O_CLOEXEC);
	for (;;) {
		if (fd < 0)
			fd = open(log, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && cmd_copy(fd) < 0) {
			rc = 1;
			break;
		}
		if (!c->follow || attempt_result_exists(dir)) {
			if (fd >= 0 && c->follow)
				cmd_copy(fd);
			break;
		}
		struct pollfd p = {.fd = ino, .events = POLLIN};
		char evbuf[4096];
		if (poll(&p, 1, 1000) > 0 &&
		    read(ino, evbuf, sizeof(evbuf)) < 0)
			break;
	}
	if (fd >= 0)
		close(fd);
	if (ino >= 0)
		close(ino);
	free(log);
	free(dir);
	return rc;
}

static int cmd_outputs_main(struct cmd_ctx *c, int argc, char **argv)
{
	char *dir;
	json_t *j = NULL, *item;
	size_t i;

	if (argc != 1) {
		fprintf(stderr, "usage: tether-agent outputs JOB\n");
		return 2;
	}
	if ((dir = cmd_attempt_dir(c, argv[0])) == NULL)
		return 1;
	if (attempt_result_read(dir, &j, NULL) < 0) {
		fprintf(stderr, "tether-agent: job %s has no result yet\n",
		        argv[0]);
		free(dir);
		return 1;
	}
	json_array_foreach(json_object_get(j, "outputs"), i, item)
	    printf("%s/outputs/%s\t%lld\t%s\n", dir,
	           json_string_value(json_object_get(item, "path")),
	           (long long)json_integer_value(json_object_get(item, "size")),
	           json_string_value(json_object_get(item, "sha256")));
	json_decref(j);
	free(dir);
	return 0;
}

const struct cmd_entry cmd_logs = {
    "logs", "JOB [-f]", "print (and follow) a job's log", cmd_logs_main};
const struct cmd_entry cmd_outputs = {
    "outputs", "JOB", "list a job's output files", cmd_outputs_main};
