/* doctor.c: `tether-agent doctor`: options, the list of checks, output. */
#include "agent/doctor.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const status_names[] = {"ok", "info", "warn", "FAIL"};

void doctor_add(struct doctor *d, const char *check, enum doctor_status s,
                const char *fix, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:s, s:s}", "check", check, "status",
	              s == DOC_FAIL ? "fail" : status_names[s], "message", msg);
	if (o == NULL)
		return;
	json_object_set_new(o, "fix", fix ? json_string(fix) : json_null());
	json_array_append_new(d->checks, o);
	if (s == DOC_FAIL)
		d->fails++;
	else if (s == DOC_WARN)
		d->warns++;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: tether-agent doctor [--config FILE] [--set key=value]... "
	    "[--json]\n"
	    "Check that this node can run Tether jobs: one line per check, "
	    "with the fix.\n"
	    "Exit status 0 when it can (warnings name features that will "
	    "not work),\n"
	    "1 when a check failed.\n"
	    "  --config FILE   agent configuration (default %s)\n"
	    "  --set key=value override one setting\n"
	    "  --json          one JSON object instead of text\n",
	    AGENT_CONF_DEFAULT);
}

/* Load the agent's configuration; a broken one is the first failure. */
static void doctor_load_conf(struct doctor *d, char **sets, int nsets)
{
	struct err e = {0};
	const char *path;
	int r;

	r = agent_conf_load(&d->conf, d->conf_path, &e);
	for (int i = 0; r == 0 && i < nsets; i++)
		r = agent_conf_set(&d->conf, sets[i], &e);
	if (r == 0)
		r = agent_conf_check(&d->conf, &e);
	if (r < 0) {
		doctor_add(d, "config", DOC_FAIL,
		           "correct the file (keys: docs/configuration.md)",
		           "%s", e.msg);
		/* go on with the defaults so that the other checks run */
		agent_conf_free(&d->conf);
		err_clear(&e);
		agent_conf_load(&d->conf, "/dev/null", &e);
		return;
	}
	d->conf_ok = true;
	path = d->conf_path ? d->conf_path : AGENT_CONF_DEFAULT;
	if (access(path, R_OK) == 0)
		doctor_add(d, "config", DOC_OK, NULL, "%s", path);
	else
		doctor_add(d, "config", DOC_INFO,
		           "install.sh writes it from the commented sample",
		           "%s not found: the defaults apply", path);
}

static void print_text(const struct doctor *d, FILE *f)
{
	size_t i;
	json_t *o;

	json_array_foreach(d->checks, i, o)
	{
		const char *st =
		    json_string_value(json_object_get(o, "status"));
		const char *fix = json_string_value(json_object_get(o, "fix"));

		fprintf(f, "%-4s  %-10s  %s%s%s\n",
		        strcmp(st, "fail") == 0 ? "FAIL" : st,
		        json_string_value(json_object_get(o, "check")),
		        json_string_value(json_object_get(o, "message")),
		        fix ? "; fix: " : "", fix ? fix : "");
	}
	if (d->fails)
		fprintf(f, "%d check(s) failed: this node cannot run jobs\n",
		        d->fails);
	else
		fprintf(f, "this node can run jobs (%d warning(s))\n",
		        d->warns);
}

static int print_json(const struct doctor *d, FILE *f)
{
	json_t *o =
	    json_pack("{s:b, s:i, s:i, s:O}", "ok", d->fails == 0, "failed",
	              d->fails, "warnings", d->warns, "checks", d->checks);

	if (o == NULL)
		return -1;
	json_dumpf(o, f, JSON_INDENT(1));
	fputc('\n', f);
	json_decref(o);
	return 0;
}

static void doctor_run_checks(struct doctor *d)
{
	doctor_check_state_dir(d);
	doctor_check_disk(d);
	doctor_check_cgroup(d);
	doctor_check_namespaces(d);
	doctor_check_docker(d);
	doctor_check_python(d);
	doctor_check_git(d);
	doctor_check_conda(d);
	doctor_check_slurm(d);
	doctor_check_spark(d);
	doctor_check_gpus(d);
	doctor_check_workspace(d);
	doctor_check_clock(d); /* after workspace: compares with its Date */
}

int doctor_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, 0, 'c'},
	    {"set", required_argument, 0, 's'},
	    {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	struct doctor d;
	char **sets = xcalloc((size_t)argc + 1, sizeof(*sets));
	int nsets = 0, c, rc;
	bool json = false;

	memset(&d, 0, sizeof(d));
	d.conf_path = getenv("TETHER_CONFIG"); /* as the other commands */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.conf_path = optarg;
			break;
		case 's':
			sets[nsets++] = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			free(sets);
			return 0;
		default:
			cli_usage_error("tether-agent doctor",
			                "unknown option '%s'",
			                cli_bad_option(argc, argv));
		}
	}
	if (optind < argc)
		cli_usage_error("tether-agent doctor",
		                "unexpected argument '%s'", argv[optind]);
	d.checks = json_array();
	doctor_load_conf(&d, sets, nsets);
	doctor_run_checks(&d);
	if (json)
		print_json(&d, stdout);
	else
		print_text(&d, stdout);
	fflush(stdout);
	rc = d.fails ? 1 : 0;
	json_decref(d.checks);
	freezero_str(d.secret);
	agent_conf_free(&d.conf);
	free(sets);
	return rc;
}
