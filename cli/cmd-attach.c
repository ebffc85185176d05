/* cmd-attach.c: tether attach ssh://user@host[:port] --key FILE [--name N]
 * [--replace] ...: the workspace side reaches out to a machine over SSH,
 * installs the agent there and waits until it has registered.
 *
 *  1. SSH in (host key checked against known_hosts before authenticating).
 *  2. Probe the machine: machine id, host name, an agent credential or a
 *     running agent.  A machine that is already attached is refused unless
 *     --replace (two agents on one machine break each other's jobs); with
 *     --replace the old agent is revoked at the workspace and its
 *     credential removed, so the new one registers in its place.
 *  3. Make a one-use registration token (POST /api/v1/tokens, 15 minutes).
 *  4. Copy tether-agent, tether-runner(-full) and install/install.sh (+ the
 * unit file and config sample) over SFTP into a private temporary directory,
 *     run install.sh --from-prefix there with the token, then remove it.
 *  5. Wait until the workspace lists the agent online. */
#include "cli/cli.h"
#include "cli/cmd-attach.h"

#include "common/err.h"
#include "common/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit code for a failed SSH step. */
/* 'text' quoted for sh, into a fresh string. */
static char *sh_quote(const char *text)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	buf_append(&b, "'", 1, NULL);
	for (const char *p = text; *p; p++) {
		if (*p == '\'')
			buf_append(&b, "'\\''", 4, NULL);
		else
			buf_append(&b, p, 1, NULL);
	}
	buf_append(&b, "'", 1, NULL);
	return buf_steal(&b);
}

static int ssh_exit(const struct err *e)
{
	if (e->code == TERR_AUTH)
		return EXIT_AUTH;
	if (e->code == TERR_NET || e->code == TERR_TIMEOUT)
		return EXIT_UNREACHABLE;
	return EXIT_FAILED;
}

static int fail(struct attach *a, const struct err *e)
{
	fprintf(stderr, "%s attach: %s\n", a->c->prog, e->msg);
	return ssh_exit(e);
}

static char *probe_value(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p && *p;
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, n) == 0 && p[n] == '=') {
			size_t l = strcspn(p + n + 1, "\n");
			return l ? strndup(p + n + 1, l) : NULL;
		}
	}
	return NULL;
}

/* What is on the machine already.  A running agent is a live pid file
 * whose process is tether-agent (a stale pid may be reused by anything), or
 * an active unit where systemd runs (in a chroot, systemctl answers 0 to
 * everything it ignores). */
static int probe(struct attach *a, struct err *e)
{
	static const char script[] =
	    "echo machine_id=$(cat /etc/machine-id 2>/dev/null); "
	    "echo hostname=$(hostname 2>/dev/null || cat /etc/hostname); "
	    "c=/var/lib/tether/credentials; if [ -s $c ]; then "
	    "echo agent_id=$(sed -n 's/.*\"agent_id\"[[:space:]]*:[[:space:]]*"
	    "\"\\([^\"]*\\)\".*/\\1/p' $c | head -n 1); fi; "
	    "p=$(cat /run/tether-agent.pid 2>/dev/null); "
	    "if [ -n \"$p\" ] && grep -q tether-agent /proc/$p/cmdline "
	    "2>/dev/null || { [ -d /run/systemd/system ] && "
	    "systemctl is-active --quiet tether-agent 2>/dev/null; }; then "
	    "echo running=1; fi; true";
	char *running = NULL;
	struct buf out;
	int r;

	if ((r = attach_run_remote(a, "probe", script, &out, e)) == 0) {
		a->machine_id = probe_value(out.data, "machine_id");
		a->hostname = probe_value(out.data, "hostname");
		a->agent_id = probe_value(out.data, "agent_id");
		running = probe_value(out.data, "running");
		a->running = running != NULL;
	}
	free(running);
	buf_free(&out);
	return r;
}

static const char *agent_str(json_t *ag, const char *field)
{
	const char *s = json_string_value(json_object_get(ag, field));
	return s ? s : "";
}

/* The workspace's first agent, not revoked, whose field equals value (or
 * NULL); one reference for the caller. */
static json_t *ws_agent(struct attach *a, const char *field, const char *value)
{
	json_t *list = NULL, *ag, *found = NULL;
	size_t i;

	if (value == NULL || value[0] == '\0' ||
	    api_json(a->c, "GET", "/api/v1/agents", NULL, &list) != EXIT_OK)
		return NULL;
	json_array_foreach(json_object_get(list, "agents"), i, ag)
	{
		if (found == NULL && strcmp(agent_str(ag, field), value) == 0 &&
		    strcmp(agent_str(ag, "state"), "revoked") != 0)
			found = json_incref(ag);
	}
	json_decref(list);
	return found;
}

static int revoke_agent(struct attach *a, json_t *ag)
{
	char *path = xasprintf("/api/v1/agents/%s", agent_str(ag, "id"));
	json_t *r = NULL;
	int rc = api_json(a->c, "DELETE", path, NULL, &r);

	free(path);
	json_decref(r);
	if (rc == EXIT_OK)
		printf("revoked the machine's previous agent %s (%s)\n",
		       agent_str(ag, "name"), agent_str(ag, "id"));
	return rc == EXIT_NOTFOUND ? EXIT_OK : rc;
}

/* Why the machine counts as attached (NULL: it does not): its credential,
 * a running agent, or an agent of the workspace with its machine id. */
static char *attached_why(struct attach *a, json_t *cred, json_t *mid)
{
	if (a->agent_id != NULL)
		return xasprintf("agent %s%s%s%s", a->agent_id,
		                 cred ? " (" : " (not known to this workspace",
		                 cred ? agent_str(cred, "name") : "", ")");
	if (mid != NULL)
		return xasprintf("the workspace has agent %s (%s) with its "
		                 "machine id",
		                 agent_str(mid, "name"), agent_str(mid, "id"));
	if (a->running)
		return xstrdup("an agent is running there");
	return NULL;
}

/* Refuse a second attachment of the machine; with --replace, retire the
 * first.  A name taken by another machine's agent is refused either way. */
static int check_attached(struct attach *a)
{
	json_t *cred = ws_agent(a, "id", a->agent_id);
	json_t *mid = ws_agent(a, "machine_id", a->machine_id);
	json_t *named = ws_agent(a, "name", a->agent_name);
	char *why = attached_why(a, cred, mid);
	int rc = EXIT_OK;

	if (named != NULL &&
	    (a->machine_id == NULL ||
	     strcmp(agent_str(named, "machine_id"), a->machine_id) != 0)) {
		fprintf(
		    stderr,
		    "%s attach: the name %s is taken by agent %s of another "
		    "machine; choose another with --name\n",
		    a->c->prog, a->agent_name, agent_str(named, "id"));
		rc = EXIT_REJECTED;
	} else if (why != NULL && !a->replace) {
		fprintf(stderr,
		        "%s attach: %s (machine id %s) is already attached: "
		        "%s; refusing a second attachment (two agents on one "
		        "machine break each other's jobs). Pass --replace to "
		        "take it over.\n",
		        a->c->prog, ssh_remote_name(a->r),
		        a->machine_id ? a->machine_id : "?", why);
		rc = EXIT_REJECTED;
	} else if (why != NULL) {
		if (cred != NULL)
			rc = revoke_agent(a, cred);
		if (rc == EXIT_OK && mid != NULL &&
		    (cred == NULL ||
		     strcmp(agent_str(mid, "id"), agent_str(cred, "id")) != 0))
			rc = revoke_agent(a, mid);
	}
	free(why);
	json_decref(cred);
	json_decref(mid);
	json_decref(named);
	return rc;
}

/* A one-use registration token valid for 15 minutes. */
static int make_token(struct attach *a)
{
	json_t *body = json_pack("{s:i, s:i}", "uses", 1, "ttl", 900),
	       *r = NULL;
	int rc = api_json(a->c, "POST", "/api/v1/tokens", body, &r);

	json_decref(body);
	if (rc == EXIT_OK) {
		const char *t = json_string_value(json_object_get(r, "token"));
		a->token = t ? xstrdup(t) : NULL;
		if (a->token == NULL)
			rc = EXIT_FAILED;
	}
	json_decref(r);
	return rc;
}

/* Append " FLAG 'value'" to b when value is set. */
static void arg(struct buf *b, const char *flag, const char *value)
{
	char *q;

	if (value == NULL)
		return;
	q = sh_quote(value);
	buf_printf(b, NULL, " %s %s", flag, q);
	free(q);
}

/* Run install.sh there (it starts the agent, which registers with the
 * token), then remove the temporary directory whatever happened. */
static int install(struct attach *a, struct err *e)
{
	const char *ca = "/etc/tether/workspace-ca.crt";
	char *d = sh_quote(a->rdir);
	struct buf cmd, out;
	int r;

	buf_init(&cmd, 1 << 16);
	if (a->c->ca != NULL)
		buf_printf(&cmd, NULL,
		           "install -d -m 0755 /etc/tether && install -m 0644 "
		           "%s/ca.crt %s && ",
		           d, ca);
	if (a->replace)
		buf_printf(&cmd, NULL, "rm -f /var/lib/tether/credentials && ");
	buf_printf(&cmd, NULL, "bash %s/install.sh --from-prefix %s", d, d);
	arg(&cmd, "--workspace", a->agent_ws);
	arg(&cmd, "--token", a->token);
	arg(&cmd, "--name", a->agent_name);
	arg(&cmd, "--labels", a->labels);
	arg(&cmd, "--ca", a->c->ca ? ca : NULL);
	buf_printf(&cmd, NULL, " --start; rc=$?; rm -rf %s; exit $rc", d);
	r = attach_run_remote(a, "install.sh", cmd.data, &out, e);
	if (r == 0 && out.data != NULL)
		fputs(out.data, stdout);
	buf_free(&out);
	freezero(cmd.data, cmd.size);
	free(d);
	return r;
}

/* Wait until the workspace lists the agent online; its id into *id. */
static int wait_online(struct attach *a, char **id)
{
	int64_t deadline = now_mono_ms() + a->timeout_ms;
	json_t *ag;

	while (now_mono_ms() < deadline) {
		ag = ws_agent(a, "name", a->agent_name);
		if (ag != NULL &&
		    strcmp(agent_str(ag, "state"), "online") == 0) {
			*id = xstrdup(
			    json_string_value(json_object_get(ag, "id")));
			json_decref(ag);
			return EXIT_OK;
		}
		json_decref(ag);
		usleep(250 * 1000);
	}
	fprintf(stderr,
	        "%s attach: the agent %s did not come online within %llds; "
	        "see /var/log/tether-agent.log or journalctl -u tether-agent "
	        "on %s, and run tether-agent doctor there\n",
	        a->c->prog, a->agent_name, (long long)(a->timeout_ms / 1000),
	        ssh_remote_name(a->r));
	return EXIT_FAILED;
}

static int attach_run(struct attach *a)
{
	struct err e = {0};
	char *id = NULL;
	int rc;

	if (ssh_remote_open(&a->o, (int)a->timeout_ms, &a->r, &e) < 0 ||
	    probe(a, &e) < 0)
		return fail(a, &e);
	a->agent_name = xstrdup(a->name       ? a->name
	                        : a->hostname ? a->hostname
	                                      : "node");
	if ((rc = check_attached(a)) != EXIT_OK ||
	    (rc = make_token(a)) != EXIT_OK)
		return rc;
	if (attach_upload(a, &e) < 0 || install(a, &e) < 0)
		return fail(a, &e);
	if ((rc = wait_online(a, &id)) != EXIT_OK)
		return rc;
	if (a->c->json)
		printf("{\"agent\": \"%s\", \"id\": \"%s\", \"machine_id\": "
		       "\"%s\"}\n",
		       a->agent_name, id, a->machine_id ? a->machine_id : "");
	else
		printf("attached %s as agent %s (%s)\n", ssh_remote_name(a->r),
		       a->agent_name, id);
	free(id);
	return EXIT_OK;
}

static void attach_free(struct attach *a)
{
	ssh_remote_close(a->r);
	free(a->rdir);
	free(a->hostname);
	free(a->machine_id);
	free(a->agent_id);
	freezero_str(a->token);
	free(a->agent_name);
}

static char *default_known_hosts(void)
{
	const char *home = getenv("HOME");

	return xasprintf("%s/.ssh/known_hosts", home ? home : "/root");
}

static int cmd_attach(struct cmd_ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {
	    {"key", required_argument, 0, 'k'},
	    {"name", required_argument, 0, 'n'},
	    {"replace", no_argument, 0, 'R'},
	    {"known-hosts", required_argument, 0, 'K'},
	    {"fingerprint", required_argument, 0, 'F'},
	    {"passphrase-file", required_argument, 0, 'P'},
	    {"labels", required_argument, 0, 'l'},
	    {"agent-workspace", required_argument, 0, 'W'},
	    {"from", required_argument, 0, 'f'},
	    {"installer", required_argument, 0, 'I'},
	    {"timeout", required_argument, 0, 't'},
	    {0, 0, 0, 0}};
	struct attach a = {.c = c, .timeout_ms = 120000};
	char *kh = NULL;
	struct err e = {0};
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "k:n:", lo, NULL)) != -1) {
		switch (ch) {
		case 'k':
			a.o.key_file = optarg;
			break;
		case 'n':
			a.name = optarg;
			break;
		case 'R':
			a.replace = true;
			break;
		case 'K':
			a.o.known_hosts = optarg;
			break;
		case 'F':
			a.o.pinned_fingerprint = optarg;
			break;
		case 'P':
			a.o.passphrase_file = optarg;
			break;
		case 'l':
			a.labels = optarg;
			break;
		case 'W':
			a.agent_ws = optarg;
			break;
		case 'f':
			a.from = optarg;
			break;
		case 'I':
			a.installer = optarg;
			break;
		case 't':
			if (parse_duration_ms(optarg, &a.timeout_ms, &e) < 0)
				cli_usage_error("tether attach",
				                "--timeout: %s", e.msg);
			break;
		default:
			cli_usage_error("tether attach", "bad option '%s'",
			                cli_bad_option(argc, argv));
		}
	}
	if (optind + 1 != argc)
		cli_usage_error("tether attach",
		                "expected ssh://user@host[:port]");
	if (a.o.key_file == NULL)
		cli_usage_error("tether attach", "--key FILE is required");
	a.o.url = argv[optind];
	a.o.connect_timeout_ms = 15000;
	if (a.o.known_hosts == NULL)
		a.o.known_hosts = kh = default_known_hosts();
	if (a.agent_ws == NULL)
		a.agent_ws = c->url;
	rc = attach_run(&a);
	attach_free(&a);
	free(kh);
	return rc;
}

const struct cmd_entry cmd_attach_entry = {
    "attach", "ssh://USER@HOST[:PORT] --key FILE [--name N] [--replace]",
    "install an agent on a machine over SSH and register it", cmd_attach};
