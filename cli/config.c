/* config.c: where the CLI finds the workspace and its token: flags, then
 * TETHER_WORKSPACE / TETHER_TOKEN / TETHER_CA, then the file
 * $XDG_CONFIG_HOME/tether/cli.conf (default ~/.config/tether/cli.conf)
 * with keys workspace, token, token_file, ca (or ca_file). */
#include "cli/cli.h"
#include "common/conf.h"
#include "common/fileio.h"
#include "common/util.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct file_conf {
	char *workspace, *token, *token_file, *ca;
};

static const struct conf_key keys[] = {
    {"workspace", CONF_STR, NULL, offsetof(struct file_conf, workspace), 0, 0,
     "workspace URL, https://host:port"},
    {"token", CONF_STR, NULL, offsetof(struct file_conf, token), 0, 0,
     "admin token"},
    {"token_file", CONF_STR, NULL, offsetof(struct file_conf, token_file), 0, 0,
     "file holding the admin token"},
    {"ca", CONF_STR, NULL, offsetof(struct file_conf, ca), 0, 0,
     "CA file for the workspace's TLS certificate"},
    {"ca_file", CONF_STR, NULL, offsetof(struct file_conf, ca), 0, 0,
     "the same as ca (the agent's spelling)"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

static char *conf_path(void)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

	if (x != NULL && *x != '\0')
		return xasprintf("%s/tether/cli.conf", x);
	return xasprintf("%s/.config/tether/cli.conf", home ? home : "/");
}

static void take(char **dst, const char *env, char **file_val)
{
	const char *v;

	if (*dst != NULL)
		return;
	if ((v = getenv(env)) != NULL && *v != '\0')
		*dst = xstrdup(v);
	else if (*file_val != NULL) {
		*dst = *file_val;
		*file_val = NULL;
	}
}

static int read_token_file(struct cmd_ctx *c, const char *path, struct err *e)
{
	size_t n;
	int r = file_read_all(path, 4096, &c->token, &n, e);

	while (r == 0 && n > 0 &&
	       (c->token[n - 1] == '\n' || c->token[n - 1] == '\r'))
		c->token[--n] = '\0';
	return r;
}

int cli_config_load(struct cmd_ctx *c, struct err *e)
{
	struct file_conf fc = {0};
	char *path = conf_path();
	int r = conf_load_file(keys, &fc, path, e);

	if (r == TERR_NOTFOUND)
		r = 0;
	take(&c->url, "TETHER_WORKSPACE", &fc.workspace);
	take(&c->token, "TETHER_TOKEN", &fc.token);
	take(&c->ca, "TETHER_CA", &fc.ca);
	if (r == 0 && c->token == NULL && fc.token_file != NULL)
		r = read_token_file(c, fc.token_file, e);
	if (r == 0 && c->url == NULL)
		r = err_set(e, TERR_INVAL,
		            "no workspace: use --workspace URL, "
		            "TETHER_WORKSPACE or 'workspace =' in %s",
		            path);
	if (r == 0 && c->token == NULL)
		r = err_set(e, TERR_INVAL,
		            "no token: use --token, TETHER_TOKEN or 'token =' "
		            "in %s",
		            path);
	if (r == 0) {
		size_t n = strlen(c->url);
		while (n > 0 && c->url[n - 1] == '/')
			c->url[--n] = '\0';
	}
	conf_free(keys, &fc);
	free(path);
	return r;
}

void cli_free(struct cmd_ctx *c)
{
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
	free(c->url);
	freezero_str(c->token);
	free(c->ca);
}
