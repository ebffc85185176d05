/* creds.c: credentials file and state directory lock. */
#include "agent/creds.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int creds_load(const char *state_dir, struct creds *c, struct err *e)
{
	char *path = xasprintf("%s/credentials", state_dir), *text = NULL;
	const char *id = NULL, *secret = NULL, *ws = NULL, *name = NULL;
	json_t *j = NULL;
	size_t len;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = file_read_all(path, 65536, &text, &len, e)) < 0)
		goto out;
	if ((r = json_parse(text, len, 4, &j, e)) < 0 ||
	    (r = json_get_str(j, "", "agent_id", true, 256, &id, e)) < 0 ||
	    (r = json_get_str(j, "", "secret", true, 1024, &secret, e)) < 0 ||
	    (r = json_get_str(j, "", "workspace", false, 4096, &ws, e)) < 0 ||
	    (r = json_get_str(j, "", "name", false, 256, &name, e)) < 0) {
		err_wrap(e, "%s", path);
		goto out;
	}
	c->agent_id = xstrdup(id);
	c->secret = xstrdup(secret);
	c->workspace = ws ? xstrdup(ws) : NULL;
	c->name = name ? xstrdup(name) : NULL;
out:
	json_decref(j);
	if (text != NULL)
		freezero_str(text);
	free(path);
	return r;
}

int creds_save(const char *state_dir, const struct creds *c, struct err *e)
{
	char *path = xasprintf("%s/credentials", state_dir);
	json_t *j = json_pack("{s:s, s:s, s:s?, s:s?}", "agent_id", c->agent_id,
	                      "secret", c->secret, "workspace", c->workspace,
	                      "name", c->name);
	char *text = json_dumps(j, JSON_INDENT(1));
	int r = file_write_atomic(path, text, strlen(text), 0600, e);

	freezero_str(text);
	json_decref(j);
	free(path);
	return r;
}

void creds_free(struct creds *c)
{
	free(c->agent_id);
	if (c->secret != NULL)
		freezero_str(c->secret);
	free(c->workspace);
	free(c->name);
	memset(c, 0, sizeof(*c));
}

int creds_lock_take(const char *state_dir, int *fd_out, struct err *e)
{
	char *path = xasprintf("%s/agent.lock", state_dir), pid[32];
	int fd, r = 0;
	pid_t holder;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = err_sys(e, TERR_IO, "%s", path);
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		holder = creds_lock_holder(state_dir);
		r = err_set(
		    e, TERR_CONFLICT,
		    "another tether-agent (pid %d) uses state directory "
		    "%s; one agent per state directory",
		    (int)holder, state_dir);
		close(fd);
		goto out;
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 ||
	    pwrite(fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid)) {
		r = err_sys(e, TERR_IO, "%s", path);
		close(fd);
		goto out;
	}
	*fd_out = fd;
out:
	free(path);
	return r;
}

pid_t creds_lock_holder(const char *state_dir)
{
	char *path = xasprintf("%s/agent.lock", state_dir), *text = NULL;
	int64_t pid = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) == 0) {
		/* Nobody holds it. */
		close(fd);
		free(path);
		return 0;
	}
	if (fd >= 0)
		close(fd);
	if (file_read_all(path, 64, &text, NULL, NULL) == 0) {
		text[strcspn(text, "\n")] = '\0';
		if (parse_i64(text, 1, INT32_MAX, &pid, NULL) < 0)
			pid = 0;
	}
	free(text);
	free(path);
	return (pid_t)pid;
}
