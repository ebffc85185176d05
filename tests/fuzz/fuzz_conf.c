/* fuzz_conf.c: the configuration file parser (common/conf.c) over the
 * agent's real keyword table, then the agent's cross-field check.  An
 * admin writes this file, but installers and config management generate
 * it, and a bad line must be an error naming file and line, never a crash.
 * Each input is parsed as a file; every line also goes through --set. */
#include "agent/config.h"
#include "common/conf.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void parse_file(const unsigned char *data, size_t size)
{
	struct agent_conf c;
	struct err e = {0};
	char path[64];
	int fd = memfd_create("conf", MFD_CLOEXEC);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	memset(&c, 0, sizeof(c));
	if (conf_defaults(agent_conf_table, &c, &e) < 0)
		abort();
	if (conf_load_file(agent_conf_table, &c, path, &e) == 0)
		(void)agent_conf_check(&c, &e);
	else if (strstr(e.msg, "line") == NULL && strstr(e.msg, path) == NULL)
		abort(); /* errors say where */
	agent_conf_free(&c);
	close(fd);
}

static void parse_sets(const unsigned char *data, size_t size)
{
	struct agent_conf c;
	struct err e = {0};
	char *text = strndup((const char *)data, size), *save = NULL;

	memset(&c, 0, sizeof(c));
	if (text == NULL || conf_defaults(agent_conf_table, &c, &e) < 0)
		abort();
	for (char *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save))
		(void)agent_conf_set(&c, l, &e);
	agent_conf_free(&c);
	free(text);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size > 65536)
		return 0;
	parse_file(data, size);
	parse_sets(data, size);
	return 0;
}
