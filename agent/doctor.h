/* doctor.h: `tether-agent doctor`, the node's self-check.
 *
 * Each check prints one line: its status, its name, what it found and, when
 * something is missing, the fix.  The exit status is 0 only when the node
 * can run jobs (no check failed); warnings name features that will not work
 * (docker jobs without dockerd, conda environments without conda).
 * docs/operations.md lists every check. */
#ifndef TETHER_AGENT_DOCTOR_H
#define TETHER_AGENT_DOCTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "agent/config.h"

/* The `doctor` subcommand: argv[0] is "doctor". Returns the exit status. */
int doctor_main(int argc, char **argv);

enum doctor_status { DOC_OK, DOC_INFO, DOC_WARN, DOC_FAIL };

struct doctor {
	struct agent_conf conf;
	const char *conf_path;
	bool conf_ok;
	json_t *checks; /* array of {"check", "status", "message", "fix"} */
	int fails, warns;
	/* from the credentials file, for the workspace probe */
	char *secret;
	/* the workspace's clock (Date header), 0 when unknown */
	long long ws_date;
};

/* Record one check.  fix may be NULL (nothing to do). */
void doctor_add(struct doctor *d, const char *check, enum doctor_status s,
                const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* doctor-node.c: checks of this machine. */
void doctor_check_cgroup(struct doctor *d);
void doctor_check_namespaces(struct doctor *d);
void doctor_check_state_dir(struct doctor *d);
void doctor_check_disk(struct doctor *d);
void doctor_check_clock(struct doctor *d);

/* doctor-tools.c: programs that environments and launchers use. */
void doctor_check_python(struct doctor *d);
void doctor_check_git(struct doctor *d);
void doctor_check_conda(struct doctor *d);
void doctor_check_slurm(struct doctor *d);
void doctor_check_gpus(struct doctor *d);
/* doctor-spark.c: java, spark-submit, the standalone master. */
void doctor_check_spark(struct doctor *d);
/* Full path of an executable found on PATH, into buf; false if none. */
bool doctor_which(const char *name, char *buf, size_t len);
/* Run argv with a timeout; stdout+stderr (first len-1 bytes) into out.
 * Returns the exit status, or -1 when it could not run or timed out. */
int doctor_run(const char *const argv[], int timeout_s, char *out, size_t len);

/* doctor-net.c: docker, the workspace, the credential. */
void doctor_check_docker(struct doctor *d);
void doctor_check_workspace(struct doctor *d);
/* The credential line from the probe's HTTP status (401: rejected). */
void doctor_report_credential(struct doctor *d, long status);

/* doctor-ssh.c: ssh:// workspaces (host key, key, tunnel, credential). */
void doctor_check_ssh_workspace(struct doctor *d, bool have_secret);

#endif
