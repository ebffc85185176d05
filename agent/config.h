/* config.h: the agent's settings, from one keyword table (config.c). */
#ifndef TETHER_AGENT_CONFIG_H
#define TETHER_AGENT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/conf.h"

struct err;

#define AGENT_CONF_DEFAULT "/etc/tether/agent.conf"
/* Environment overrides: TETHER_AGENT_<KEY> (TETHER_CONFIG names the
 * file); never the CLI's TETHER_TOKEN / TETHER_WORKSPACE / TETHER_CA. */
#define AGENT_ENV_PREFIX "TETHER_AGENT_"

struct agent_conf {
	/* workspace */
	char *workspace, *token, *token_file, *ca_file, *proxy, *no_proxy;
	char *name, *labels;
	char *machine_id;   /* NULL: /etc/machine-id */
	char *node_address; /* NULL: the route's source (docs/multi-node.md) */
	int64_t heartbeat_ms, connect_timeout_ms, backoff_min_ms;
	int64_t backoff_max_ms, log_chunk;
	/* ssh:// workspaces (docs/ssh.md) */
	char *ssh_known_hosts, *ssh_key, *ssh_key_passphrase_file;
	char *ssh_fingerprint;
	int64_t ssh_remote_port, ssh_keepalive_ms;
	/* node */
	char *state_dir, *log_level;
	int64_t max_jobs, prefetch, gpus, memory;
	double cpus;
	/* runner settings (spec.json "runner") */
	char *runner_path, *default_launcher, *job_user, *cgroup_parent;
	char *default_python, *conda_tool, *docker_socket, *allowed_mounts;
	char *slurm_partition, *slurm_shared_dir, *git_known_hosts,
	    *git_ca_file;
	char *slurm_account, *slurm_qos, *slurm_capacity;
	int64_t slurm_poll_ms;
	char *spark_master, *spark_master_ui, *spark_home, *spark_driver_host;
	char *yarn_command, *yarn_conf_dir; /* Spark on YARN: the yarn CLI */
	int64_t spark_poll_ms;
	char *env_dir; /* NULL: <state_dir>/envs (agent_conf_env_dir) */
	bool docker_readonly_rootfs, env_lookahead;
	int64_t kill_grace_ms, default_pids, max_log_bytes, env_cache_budget;
	int64_t snapshot_max_bytes, snapshot_max_entries, source_max_bytes;
	/* housekeeping */
	int64_t attempt_retention_ms, housekeeping_ms, runner_start_ms;
	char *attempt_disk_budget, *attempt_max_disk; /* agent_conf_disk */
	char *state_dir_min_free;
	int64_t disk_check_ms;
	/* operations (agent/metrics.h) */
	char *metrics_listen;
	/* preemption notices (agent/preempt.c) */
	char *preempt_events_url, *preempt_file;
	int64_t preempt_poll_ms, preempt_window_ms;
};

extern const struct conf_key agent_conf_table[];

/* Defaults, then the file (path NULL: the default path, missing is fine),
 * then TETHER_AGENT_* variables.  --set pairs are applied by the caller with
 * agent_conf_set. */
int agent_conf_load(struct agent_conf *c, const char *path, struct err *e);
int agent_conf_set(struct agent_conf *c, const char *kv, struct err *e);
/* Checks that span keys (URL scheme, durations). */
int agent_conf_check(const struct agent_conf *c, struct err *e);
void agent_conf_free(struct agent_conf *c);
/* A disk amount setting: a size ("50G", "0") or a share of state_dir's
 * filesystem ("10%"; 0 when state_dir is NULL or cannot be read). */
int agent_conf_disk(const char *v, const char *state_dir, const char *key,
                    int64_t *out, struct err *e);
/* The environment cache directory: env_dir, else <state_dir>/envs (heap). */
char *agent_conf_env_dir(const struct agent_conf *c);
/* HADOOP_CONF_DIR for the yarn command: yarn_conf_dir, else the agent's
 * own HADOOP_CONF_DIR environment, else NULL (borrowed). */
const char *agent_conf_yarn_conf(const struct agent_conf *c);
/* Copy the ssh_* settings into a transport configuration. */
struct transport_config;
void agent_conf_ssh(const struct agent_conf *c, struct transport_config *tc);

#endif
