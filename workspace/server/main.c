/* tether-workspace: the reference workspace server.
 *   tether-workspace init  --dir D [--port N] [--plain-port N] [--tls-ip IP]...
 *   tether-workspace serve --dir D [--port N] [--plain-port N]
 *                          [--set key=value]...
 *   tether-workspace backup --dir D TARGET */
#include "workspace/server/ws.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct opts {
	const char *cmd, *arg, *dir, *port, *plain_port;
	char *sets[64];
	int nsets;
	char *tls_ips[16]; /* init: more addresses in the certificate */
	int ntls_ips;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tether-workspace init --dir DIR [--port N] "
	           "[--plain-port N] [--tls-ip IP]...\n"
	           "       tether-workspace serve --dir DIR [--port N] "
	           "[--plain-port N] [--set KEY=VALUE]...\n"
	           "       tether-workspace backup --dir DIR TARGET\n"
	           "       tether-workspace config-help | config-markdown\n"
	           "the reference workspace server (docs/workspace.md)\n");
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"help", no_argument, 0, 'h'},
	    {"version", no_argument, 0, 'V'},
	    {"dir", required_argument, 0, 'd'},
	    {"port", required_argument, 0, 'p'},
	    {"plain-port", required_argument, 0, 'P'},
	    {"set", required_argument, 0, 's'},
	    {"tls-ip", required_argument, 0, 'I'},
	    {0, 0, 0, 0}};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hVd:p:P:s:I:", lo, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("tether-workspace %s\n", TETHER_VERSION);
			exit(0);
		case 'd':
			o->dir = optarg;
			break;
		case 'p':
			o->port = optarg;
			break;
		case 'P':
			o->plain_port = optarg;
			break;
		case 's':
			if (o->nsets < 64)
				o->sets[o->nsets++] = optarg;
			break;
		case 'I':
			if (o->ntls_ips >= 16)
				cli_usage_error("tether-workspace",
				                "at most 16 --tls-ip");
			o->tls_ips[o->ntls_ips++] = optarg;
			break;
		default:
			cli_usage_error("tether-workspace",
			                "unknown option '%s'",
			                cli_bad_option(argc, argv));
		}
	}
	if (optind < argc)
		o->cmd = argv[optind];
	if (optind + 1 < argc)
		o->arg = argv[optind + 1];
}

static int apply_flags(struct ws *ws, struct opts *o, struct err *e)
{
	int r = 0;

	if (o->port)
		r = conf_set(ws_conf_table, &ws->conf, "port", o->port,
		             "--port", e);
	if (r == 0 && o->plain_port)
		r = conf_set(ws_conf_table, &ws->conf, "plain_port",
		             o->plain_port, "--plain-port", e);
	for (int i = 0; r == 0 && i < o->nsets; i++) {
		char *kv = xstrdup(o->sets[i]), *eq = strchr(kv, '=');
		if (eq == NULL)
			r = err_set(e, TERR_INVAL,
			            "--set %s: expected KEY=VALUE", kv);
		else {
			*eq = '\0';
			r = conf_set(ws_conf_table, &ws->conf, kv, eq + 1,
			             "--set", e);
		}
		free(kv);
	}
	return r;
}

static int write_ports(struct ws *ws, struct err *e)
{
	char *path = config_path(ws, "ports.json");
	char *text = xasprintf(
	    "{\"port\": %d, \"plain_port\": %s%d%s, \"pid\": %d}\n", ws->port,
	    "", ws->plain_d ? ws->plain_port : -1, "", (int)getpid());
	int r = file_write_atomic(path, text, strlen(text), 0644, e);

	free(text);
	free(path);
	return r;
}

static int serve(struct opts *o, struct err *e)
{
	struct ws ws = {0};
	char *db = NULL, *tmp = NULL;
	sigset_t set;
	int r, sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = config_load(&ws, o->dir, e)) < 0 ||
	    (r = apply_flags(&ws, o, e)) < 0)
		goto out;
	db = config_path(&ws, ws.conf.db);
	tmp = config_path(&ws, "tmp");
	rm_rf(tmp, NULL);
	if ((r = mkdir_p(tmp, 0700, e)) < 0 ||
	    (r = store_open(&ws, db, e)) < 0 ||
	    (r = metrics_open(&ws, e)) < 0 || (r = wait_start(&ws, e)) < 0)
		goto out;
	if ((r = httpd_start(&ws, e)) < 0 || (r = write_ports(&ws, e)) < 0) {
		wait_stop(&ws);
		goto out;
	}
	log_info("listening on https://%s:%d%s", ws.conf.listen, ws.port,
	         ws.plain_d ? " and plain http on loopback" : "");
	sigwait(&set, &sig);
	log_info("signal %d: stopping", sig);
	wait_stop(&ws);
out:
	httpd_stop(&ws);
	wait_free(&ws);
	if (ws.db != NULL) {
		store_lock(&ws);
		lease_hb_flush(&ws);
		store_unlock(&ws);
	}
	store_close(&ws);
	store_metrics_close(&ws);
	conf_free(ws_conf_table, &ws.conf);
	free(ws.dir);
	free(db);
	free(tmp);
	return r;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct err e = {0};
	int r, port = 8443, pport = -1;

	log_set_prog("tether-workspace");
	parse_opts(argc, argv, &o);
	if (o.cmd == NULL) {
		usage(stderr);
		return 2;
	}
	if (strcmp(o.cmd, "config-help") == 0) {
		conf_print_help(ws_conf_table, stdout);
		return 0;
	}
	if (strcmp(o.cmd, "config-markdown") == 0) {
		conf_print_markdown(ws_conf_table, stdout);
		return 0;
	}
	if (o.dir == NULL)
		cli_usage_error("tether-workspace", "%s needs --dir DIR",
		                o.cmd);
	if (strcmp(o.cmd, "init") == 0) {
		if ((o.port && sscanf(o.port, "%d", &port) != 1) ||
		    (o.plain_port && sscanf(o.plain_port, "%d", &pport) != 1))
			cli_usage_error("tether-workspace", "bad port number");
		r = init_run(o.dir, port, pport, o.tls_ips, o.ntls_ips, &e);
		if (r == 0)
			printf("workspace initialised in %s\n", o.dir);
	} else if (strcmp(o.cmd, "serve") == 0) {
		r = serve(&o, &e);
	} else if (strcmp(o.cmd, "backup") == 0) {
		if (o.arg == NULL)
			cli_usage_error("tether-workspace",
			                "backup needs a TARGET directory");
		r = backup_run(o.dir, o.arg, &e);
		if (r == 0)
			printf("workspace %s backed up in %s\n", o.dir, o.arg);
	} else {
		cli_usage_error("tether-workspace", "unknown command '%s'",
		                o.cmd);
	}
	if (r < 0) {
		fprintf(stderr, "tether-workspace: %s\n", e.msg);
		return 1;
	}
	return 0;
}
