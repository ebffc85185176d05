/* config.c: the agent's keyword table: file, TETHER_AGENT_* environment,
 * --set,
 * --help and docs/configuration.md all come from agent_conf_table. */
#include "agent/config.h"

#include "common/attempt.h"
#include "common/err.h"
#include "common/jobspec.h"
#include "common/util.h"
#include "transport/transport.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define OFF(f) offsetof(struct agent_conf, f)
#define I64MAX INT64_MAX

const struct conf_key agent_conf_table[] = {
    {"workspace", CONF_STR, NULL, OFF(workspace), 0, 0,
     "Workspace URL: https://host[:port], ssh://user@host[:port], or "
     "http://127.0.0.1:port (plain http only to loopback)."},
    {"token", CONF_STR, NULL, OFF(token), 0, 0,
     "Registration token (tr_...), needed on the first start only."},
    {"token_file", CONF_STR, NULL, OFF(token_file), 0, 0,
     "File holding the registration token (instead of `token`)."},
    {"ca_file", CONF_STR, NULL, OFF(ca_file), 0, 0,
     "PEM file of CA certificates trusted for the workspace (default: the "
     "system store)."},
    {"proxy", CONF_STR, NULL, OFF(proxy), 0, 0,
     "HTTP(S) proxy URL; unset: the https_proxy/no_proxy variables apply."},
    {"no_proxy", CONF_STR, NULL, OFF(no_proxy), 0, 0,
     "Hosts reached without the proxy (comma-separated)."},
    {"ssh_known_hosts", CONF_STR, "/etc/tether/known_hosts",
     OFF(ssh_known_hosts), 0, 0,
     "ssh:// workspace: OpenSSH known_hosts file with the server's host key "
     "(an unknown key is refused unless ssh_fingerprint pins it; a changed "
     "key is always refused)."},
    {"ssh_key", CONF_STR, "/etc/tether/ssh_key", OFF(ssh_key), 0, 0,
     "ssh:// workspace: private key (ed25519, or RSA) the agent logs in "
     "with."},
    {"ssh_key_passphrase_file", CONF_STR, NULL, OFF(ssh_key_passphrase_file), 0,
     0, "ssh:// workspace: file whose first line is ssh_key's passphrase."},
    {"ssh_fingerprint", CONF_STR, NULL, OFF(ssh_fingerprint), 0, 0,
     "ssh:// workspace: accept a host key missing from ssh_known_hosts when "
     "its fingerprint is this (SHA256:..., as `ssh-keygen -lf` prints)."},
    {"ssh_remote_port", CONF_INT, "8080", OFF(ssh_remote_port), 1, 65535,
     "ssh:// workspace: port of the workspace's plain-HTTP listener on the "
     "SSH server's loopback (its plain_port)."},
    {"ssh_keepalive", CONF_DURATION, "15s", OFF(ssh_keepalive_ms), 0, 0,
     "ssh:// workspace: keepalive interval (0: off); a server silent for "
     "three intervals counts as gone."},
    {"name", CONF_STR, NULL, OFF(name), 0, 0,
     "Agent name in the workspace (default: the host name)."},
    {"machine_id", CONF_STR, NULL, OFF(machine_id), 0, 0,
     "Machine identity sent to the workspace (default: /etc/machine-id); "
     "for several agents on one machine, as containers and tests run "
     "them."},
    {"node_address", CONF_STR, NULL, OFF(node_address), 0, 0,
     "IP address this node offers the other ranks of a multi-node job "
     "(default: the source address of its route to the workspace)."},
    {"labels", CONF_STR, NULL, OFF(labels), 0, 0,
     "Comma-separated labels that jobs can ask for in placement."},
    {"heartbeat_interval", CONF_DURATION, "30s", OFF(heartbeat_ms), 0, 0,
     "Lease long-poll period: an idle agent makes one request per "
     "interval (at most 60s)."},
    {"connect_timeout", CONF_DURATION, "10s", OFF(connect_timeout_ms), 0, 0,
     "Timeout for connecting to the workspace."},
    {"backoff_min", CONF_DURATION, "1s", OFF(backoff_min_ms), 0, 0,
     "First retry delay when the workspace is unreachable."},
    {"backoff_max", CONF_DURATION, "60s", OFF(backoff_max_ms), 0, 0,
     "Cap of the exponential retry delay (jittered)."},
    {"log_chunk", CONF_SIZE, "8M", OFF(log_chunk), 0, 0,
     "Largest log upload per request (the protocol allows 8M)."},
    {"state_dir", CONF_STR, ATTEMPT_DEF_STATE_DIR, OFF(state_dir), 0, 0,
     "State directory: agent.db, credentials, attempt directories."},
    {"log_level", CONF_STR, "info", OFF(log_level), 0, 0,
     "error, warn, info or debug."},
    {"max_jobs", CONF_INT, "4", OFF(max_jobs), 1, 1024,
     "Most jobs running at once."},
    {"prefetch", CONF_INT, "2", OFF(prefetch), 0, 64,
     "Jobs accepted beyond the free slots, waiting in the local queue."},
    {"cpus", CONF_DOUBLE, "0", OFF(cpus), 0, 1 << 20,
     "CPUs offered to jobs (0: all detected)."},
    {"memory", CONF_SIZE, "0", OFF(memory), 0, 0,
     "Memory offered to jobs (0: all detected)."},
    {"gpus", CONF_INT, "-1", OFF(gpus), -1, 256,
     "GPUs offered to jobs (-1: all detected through NVML)."},
    {"runner_path", CONF_STR, NULL, OFF(runner_path), 0, 0,
     "tether-runner binary (default: next to tether-agent)."},
    {"default_launcher", CONF_STR, ATTEMPT_DEF_LAUNCHER, OFF(default_launcher),
     0, 0,
     "Launcher for jobs that do not name one: sandbox, docker, slurm or "
     "spark."},
    {"job_user", CONF_STR, ATTEMPT_DEF_JOB_USER, OFF(job_user), 0, 0,
     "User that jobs run as."},
    {"cgroup_parent", CONF_STR, ATTEMPT_DEF_CGROUP_PARENT, OFF(cgroup_parent),
     0, 0, "Parent cgroup of the jobs' cgroups."},
    {"default_python", CONF_STR, ATTEMPT_DEF_PYTHON, OFF(default_python), 0, 0,
     "Interpreter for venv environments that do not name one."},
    {"conda_tool", CONF_STR, NULL, OFF(conda_tool), 0, 0,
     "micromamba, mamba or conda (default: the first found)."},
    {"docker_socket", CONF_STR, ATTEMPT_DEF_DOCKER_SOCKET, OFF(docker_socket),
     0, 0, "Docker Engine API socket."},
    {"allowed_mounts", CONF_STR, NULL, OFF(allowed_mounts), 0, 0,
     "Host directories jobs may mount: comma-separated `path[:rw]` "
     "(read-only unless :rw)."},
    {"slurm_partition", CONF_STR, NULL, OFF(slurm_partition), 0, 0,
     "Default Slurm partition for the slurm launcher."},
    {"slurm_shared_dir", CONF_STR, NULL, OFF(slurm_shared_dir), 0, 0,
     "Where Slurm jobs run, as the job user (work, outputs, checkpoints); "
     "default <state_dir>-slurm: compute nodes must mount it at that path "
     "(docs/slurm.md)."},
    {"slurm_account", CONF_STR, NULL, OFF(slurm_account), 0, 0,
     "Slurm account for jobs whose spec names none."},
    {"slurm_qos", CONF_STR, NULL, OFF(slurm_qos), 0, 0,
     "Slurm QOS for jobs whose spec names none."},
    {"slurm_poll", CONF_DURATION, "5s", OFF(slurm_poll_ms), 0, 0,
     "How often a runner asks scontrol about its Slurm job."},
    {"slurm_capacity", CONF_STR, "auto", OFF(slurm_capacity), 0, 0,
     "Report the Slurm partitions (scontrol) in the heartbeat: on, off, or "
     "auto (on when default_launcher is slurm or slurm_partition is set, "
     "and sinfo and sbatch are installed)."},
    {"spark_master", CONF_STR, NULL, OFF(spark_master), 0, 0,
     "Spark master for spark jobs whose spec names none: "
     "spark://host:port, yarn or local[N] (docs/spark.md)."},
    {"spark_master_ui", CONF_STR, NULL, OFF(spark_master_ui), 0, 0,
     "Web UI of the standalone master (its JSON status and kill page); "
     "default http://<master host>:8080."},
    {"spark_home", CONF_STR, NULL, OFF(spark_home), 0, 0,
     "Spark installation (SPARK_HOME) whose bin/spark-submit runs jobs "
     "(default: spark-submit on PATH)."},
    {"spark_driver_host", CONF_STR, NULL, OFF(spark_driver_host), 0, 0,
     "Address the executors reach the driver at (spark.driver.host); "
     "default: this node's hostname."},
    {"yarn_command", CONF_STR, "yarn", OFF(yarn_command), 0, 0,
     "The yarn command (a path, or a name on PATH) the agent and runners "
     "run for spark_master yarn: node -list (capacity), application "
     "-status and -kill (docs/spark.md)."},
    {"yarn_conf_dir", CONF_STR, NULL, OFF(yarn_conf_dir), 0, 0,
     "HADOOP_CONF_DIR for the yarn command and spark-submit (default: the "
     "agent's HADOOP_CONF_DIR environment, else the command's own)."},
    {"spark_poll", CONF_DURATION, "1s", OFF(spark_poll_ms), 0, 0,
     "How often a runner looks for its Spark application's id and state."},
    {"git_known_hosts", CONF_STR, NULL, OFF(git_known_hosts), 0, 0,
     "known_hosts file checked for git sources over ssh (default: "
     "/etc/ssh/ssh_known_hosts)."},
    {"git_ca_file", CONF_STR, NULL, OFF(git_ca_file), 0, 0,
     "CA bundle for git sources over https (default: the system one)."},
    {"docker_readonly_rootfs", CONF_BOOL, "no", OFF(docker_readonly_rootfs), 0,
     0, "Docker jobs get a read-only root filesystem (with a tmpfs /tmp)."},
    {"kill_grace", CONF_DURATION, "10s", OFF(kill_grace_ms), 0, 0,
     "Time between SIGTERM and SIGKILL when a job is stopped."},
    {"default_pids", CONF_INT, "4096", OFF(default_pids), 1, 1 << 22,
     "Process limit of a job that does not set one."},
    {"max_log_bytes", CONF_SIZE, "10G", OFF(max_log_bytes), 0, 0,
     "Cap of one attempt's log on the node; the runner writes a "
     "truncation marker at the cap."},
    {"snapshot_max_bytes", CONF_SIZE, "2G", OFF(snapshot_max_bytes), 0, 0,
     "Most bytes a source snapshot may unpack to; over it the attempt ends "
     "source_failed naming this setting and the partial extraction is "
     "removed."},
    {"snapshot_max_entries", CONF_INT, "1000000", OFF(snapshot_max_entries), 1,
     I64MAX,
     "Most entries (files, directories, links) in a source snapshot or a git "
     "checkout (submodules included)."},
    {"source_max_bytes", CONF_SIZE, "2G", OFF(source_max_bytes), 0, 0,
     "Most bytes a git source may fetch into its mirror and check out "
     "(submodules included); over it the attempt ends source_failed."},
    {"env_cache_budget", CONF_SIZE, "50G", OFF(env_cache_budget), 0, 0,
     "Disk budget of built environments (least recently used evicted; "
     "0: no limit)."},
    {"env_dir", CONF_STR, NULL, OFF(env_dir), 0, 0,
     "Cache of built environments (default: <state_dir>/envs); any "
     "absolute path, under /tmp too."},
    {"env_lookahead", CONF_BOOL, "yes", OFF(env_lookahead), 0, 0,
     "Build the environment of a job waiting in the local queue ahead of "
     "time when a CPU is spare (tether-runner envs build)."},
    {"attempt_retention", CONF_DURATION, "7d", OFF(attempt_retention_ms), 0, 0,
     "How long finished attempt directories are kept."},
    {"attempt_disk_budget", CONF_STR, "10%", OFF(attempt_disk_budget), 0, 0,
     "Disk space finished attempt directories may use, a size or a share "
     "of the state dir's filesystem (\"10%\"); the oldest are removed "
     "first when over it, before attempt_retention (0: no limit)."},
    {"attempt_max_disk", CONF_STR, "25%", OFF(attempt_max_disk), 0, 0,
     "Disk one running attempt may use (work, outputs, checkpoints, its "
     "/tmp), a size or a share of the state dir's filesystem; a job's "
     "resources.disk may ask for less; a job at its budget is stopped "
     "and ends disk_limit (0: no limit)."},
    {"disk_check_interval", CONF_DURATION, "1s", OFF(disk_check_ms), 0, 0,
     "How often a runner measures its job's disk use (less often when "
     "measuring is slow); what the job writes meanwhile is the overshoot."},
    {"state_dir_min_free", CONF_STR, "2%", OFF(state_dir_min_free), 0, 0,
     "Free space in the state dir's filesystem (a size, or a share of "
     "it) below which the agent takes and starts no jobs, and says why in "
     "its heartbeat, status and doctor (never less than 4M)."},
    {"housekeeping_interval", CONF_DURATION, "10m", OFF(housekeeping_ms), 0, 0,
     "How often finished attempt directories are cleaned up."},
    {"runner_start_timeout", CONF_DURATION, "30s", OFF(runner_start_ms), 0, 0,
     "A runner that has not written state.json after this is lost."},
    {"metrics_listen", CONF_STR, NULL, OFF(metrics_listen), 0, 0,
     "Serve Prometheus metrics at http://HOST:PORT/metrics, e.g. "
     "127.0.0.1:9464 (loopback only; unset: off)."},
    {"preempt_events_url", CONF_STR, NULL, OFF(preempt_events_url), 0, 0,
     "Scheduled-events endpoint polled for an eviction notice (Azure: "
     "http://169.254.169.254/metadata/scheduledevents?api-version="
     "2020-07-01; a `Preempt` event is a notice; unset: off). See "
     "docs/checkpointing.md."},
    {"preempt_file", CONF_STR, NULL, OFF(preempt_file), 0, 0,
     "A file whose appearance is an eviction notice (unset: off)."},
    {"preempt_poll", CONF_DURATION, "1s", OFF(preempt_poll_ms), 0, 0,
     "How often preempt_events_url and preempt_file are checked."},
    {"preempt_window", CONF_DURATION, "30s", OFF(preempt_window_ms), 0, 0,
     "Time before the eviction assumed for a notice without a time "
     "(preempt_file, SIGPWR); jobs get two thirds of the window to "
     "checkpoint."},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

int agent_conf_load(struct agent_conf *c, const char *path, struct err *e)
{
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = conf_defaults(agent_conf_table, c, e)) < 0)
		return r;
	r = conf_load_file(agent_conf_table, c,
	                   path ? path : AGENT_CONF_DEFAULT, e);
	if (r == TERR_NOTFOUND && path == NULL)
		r = 0;
	if (r < 0)
		return r;
	/* TETHER_AGENT_<KEY>: the CLI's TETHER_TOKEN (an admin token),
	 * TETHER_WORKSPACE... must not reach the agent's settings. */
	return conf_load_env(agent_conf_table, c, AGENT_ENV_PREFIX, e);
}

int agent_conf_set(struct agent_conf *c, const char *kv, struct err *e)
{
	const char *eq = strchr(kv, '=');
	char *key;
	int r;

	if (eq == NULL)
		return err_set(e, TERR_INVAL, "--set %s: expected key=value",
		               kv);
	key = xasprintf("%.*s", (int)(eq - kv), kv);
	r = conf_set(agent_conf_table, c, key, eq + 1, "--set", e);
	free(key);
	return r;
}

int agent_conf_disk(const char *v, const char *state_dir, const char *key,
                    int64_t *out, struct err *e)
{
	struct statvfs sv;
	const char *pct = v ? strchr(v, '%') : NULL;
	char *num;
	double share;
	int r;

	*out = 0;
	if (v == NULL || pct == NULL)
		return v == NULL || parse_size(v, out, e) == 0
		           ? 0
		           : err_wrap(e, "%s", key);
	num = xasprintf("%.*s", (int)(pct - v), v);
	r = pct[1] != '\0' ? -1 : parse_double(num, 0, 100, &share, e);
	free(num);
	if (r < 0)
		return err_set(e, TERR_INVAL,
		               "%s: '%s': a size (\"50G\") or a share of the "
		               "state dir's filesystem (\"10%%\")",
		               key, v);
	if (state_dir != NULL && statvfs(state_dir, &sv) == 0)
		*out = (int64_t)((double)sv.f_blocks * (double)sv.f_frsize *
		                 share / 100.0);
	return 0;
}

int agent_conf_check(const struct agent_conf *c, struct err *e)
{
	int64_t n;

	if (c->heartbeat_ms < 1000 || c->heartbeat_ms > 60000)
		return err_set(e, TERR_INVAL,
		               "heartbeat_interval: between 1s and 60s");
	if (c->backoff_min_ms < 1 || c->backoff_max_ms < c->backoff_min_ms)
		return err_set(
		    e, TERR_INVAL,
		    "backoff_max must be at least backoff_min (> 0)");
	if (c->log_chunk < 4096 || c->log_chunk > (8 << 20))
		return err_set(e, TERR_INVAL, "log_chunk: between 4K and 8M");
	if (c->state_dir == NULL || c->state_dir[0] != '/')
		return err_set(e, TERR_INVAL, "state_dir: an absolute path");
	if (agent_conf_disk(c->attempt_disk_budget, NULL, "attempt_disk_budget",
	                    &n, e) < 0 ||
	    agent_conf_disk(c->attempt_max_disk, NULL, "attempt_max_disk", &n,
	                    e) < 0 ||
	    agent_conf_disk(c->state_dir_min_free, NULL, "state_dir_min_free",
	                    &n, e) < 0)
		return e->code;
	if (c->snapshot_max_bytes <= 0 || c->source_max_bytes <= 0)
		return err_set(e, TERR_INVAL,
		               "snapshot_max_bytes and source_max_bytes: more "
		               "than 0");
	if (c->env_dir != NULL && c->env_dir[0] != '/')
		return err_set(e, TERR_INVAL,
		               "env_dir: an absolute path, not '%s'",
		               c->env_dir);
	if (c->node_address != NULL && c->node_address[0] != '\0') {
		unsigned char ip[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, c->node_address, ip) != 1 &&
		    inet_pton(AF_INET6, c->node_address, ip) != 1)
			return err_set(e, TERR_INVAL,
			               "node_address: an IP address, not '%s'",
			               c->node_address);
	}
	if (c->slurm_capacity != NULL && strcmp(c->slurm_capacity, "auto") &&
	    strcmp(c->slurm_capacity, "on") && strcmp(c->slurm_capacity, "off"))
		return err_set(e, TERR_INVAL,
		               "slurm_capacity: auto, on or off, not '%s'",
		               c->slurm_capacity);
	if (c->spark_master != NULL &&
	    !jobspec_spark_master_ok(c->spark_master))
		return err_set(e, TERR_INVAL,
		               "spark_master: spark://host:port, yarn or "
		               "local[N], not '%s'",
		               c->spark_master);
	return 0;
}

void agent_conf_free(struct agent_conf *c)
{
	conf_free(agent_conf_table, c);
}

char *agent_conf_env_dir(const struct agent_conf *c)
{
	return c->env_dir ? xstrdup(c->env_dir)
	                  : xasprintf("%s/envs", c->state_dir);
}

const char *agent_conf_yarn_conf(const struct agent_conf *c)
{
	const char *env = getenv("HADOOP_CONF_DIR");

	if (c->yarn_conf_dir != NULL && *c->yarn_conf_dir != '\0')
		return c->yarn_conf_dir;
	return env != NULL && *env != '\0' ? env : NULL;
}

void agent_conf_ssh(const struct agent_conf *c, struct transport_config *tc)
{
	tc->ssh_known_hosts = c->ssh_known_hosts;
	tc->ssh_key_file = c->ssh_key;
	tc->ssh_passphrase_file = c->ssh_key_passphrase_file;
	tc->ssh_fingerprint = c->ssh_fingerprint;
	tc->ssh_remote_port = (int)c->ssh_remote_port;
	tc->ssh_keepalive_s = c->ssh_keepalive_ms == 0
	                          ? -1
	                          : (int)((c->ssh_keepalive_ms + 999) / 1000);
}
