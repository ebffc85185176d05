/* jobspec.h: the job specification (docs/jobspec.md), parsed strictly.
 *
 * One parser serves the workspace (400 on bad input), the CLI (error
 * before upload), the agent (local submit) and the runner.  Strings point
 * into the parsed JSON, which the struct keeps alive until jobspec_free. */
#ifndef TETHER_JOBSPEC_H
#define TETHER_JOBSPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

enum source_kind { SOURCE_NONE, SOURCE_GIT, SOURCE_SNAPSHOT, SOURCE_PATH };
enum env_kind { ENV_NONE, ENV_VENV, ENV_CONDA, ENV_DOCKER };
enum launcher_kind {
	LAUNCHER_DEFAULT, /* agent's default_launcher */
	LAUNCHER_SANDBOX,
	LAUNCHER_DOCKER,
	LAUNCHER_SLURM,
	LAUNCHER_SPARK, /* spark-submit (docs/spark.md) */
};
enum network_mode { NET_HOST, NET_NONE };

struct jobspec_kv {
	const char *key;
	const char *value;
};

struct jobspec_mount {
	const char *source; /* absolute path on the node */
	const char *target; /* absolute path in the job */
	bool readonly;
};

struct jobspec {
	json_t *root; /* owns every string below */
	const char *name;
	const char **argv; /* NULL-terminated */
	size_t argc;

	struct {
		enum source_kind kind;
		const char *url;    /* git */
		const char *commit; /* git: pinned commit (hex) */
		const char *ref;    /* git: branch or tag, resolved at fetch */
		const char *token_secret;   /* git over https: secret name */
		const char *ssh_key_secret; /* git over ssh: secret name */
		bool submodules;
		const char *snapshot; /* workspace snapshot id (sha256) */
		const char *path;     /* local directory (local submit) */
	} source;

	struct {
		enum env_kind kind;
		const char *python; /* venv interpreter */
		bool system_site_packages;
		const char *requirements_file; /* path in the source tree */
		const char **requirements;     /* NULL-terminated, or NULL */
		const char **pip_options;      /* NULL-terminated, or NULL */
		const char *conda_file;        /* environment.yml in source */
		const char *conda_inline;      /* environment.yml text */
		const char *conda_tool;        /* micromamba | mamba | conda */
		const char *image;             /* docker image */
		const char *dockerfile;        /* Dockerfile in source */
		const char *registry_secret;   /* "user:password" secret */
	} env;

	struct {
		double cpus;    /* 0 = no CPU limit */
		int64_t memory; /* bytes; 0 = no limit */
		int64_t gpus;   /* count */
		int64_t pids;   /* 0 = agent default */
		int64_t disk;   /* bytes; 0 = the agent's attempt_max_disk */
	} resources;

	struct jobspec_kv *env_vars;
	size_t nenv;
	struct jobspec_kv *secrets;
	size_t nsecrets;

	int64_t timeout_ms;      /* 0 = none */
	int64_t hang_timeout_ms; /* 0 = none */
	int64_t retries;
	int64_t priority;
	const char *placement_agent;
	const char **placement_labels; /* NULL-terminated, or NULL */
	enum launcher_kind launcher;
	enum network_mode network;
	struct jobspec_mount *mounts;
	size_t nmounts;
	const char *workdir; /* relative to /tether/work */
	/* Multi-node (jobspec-nodes.c, docs/multi-node.md): the gang size,
	 * processes started on each node, and whether every rank's outputs
	 * are kept (outputs_from: "all") or rank 0's only (the default). */
	int64_t nodes;              /* >= 1; default 1 */
	int64_t processes_per_node; /* >= 1; default 1 */
	bool outputs_all;

	struct {
		const char *signal; /* "TERM" (default) or "USR1" ... */
		int64_t grace_ms;
		bool on_timeout;
		int64_t resume_from; /* a job whose checkpoint starts this
		                      * one (workspace jobs), or 0 */
	} checkpoint;

	struct {
		const char *partition, *account, *qos;
		int64_t nodes, ntasks;
	} slurm;

	/* The spark launcher's object (jobspec-spark.c, docs/spark.md); NULL
	 * and 0 where the spec leaves a field out. */
	struct {
		const char *master;      /* yarn, spark://h:p, local[N] */
		const char *deploy_mode; /* client (default) or cluster */
		struct jobspec_kv *conf; /* spark.* name -> value */
		size_t nconf;
		int64_t executors, executor_cores;
		const char *executor_memory, *driver_memory; /* "512m", "2g" */
		/* NULL-terminated paths in the work dir; archives may end
		 * #alias */
		const char **py_files, **archives;
	} spark;

	/* Sources of metric points besides TETHER_METRIC lines
	 * (jobspec-metrics.c, docs/metrics.md); NULL/false when off. */
	struct {
		const char *regex;       /* PCRE2, with named groups */
		bool json_lines;         /* numeric fields of JSON objects */
		const char *tensorboard; /* dir under the outputs */
	} metrics;
};

/* Parse and validate; errors name the field ("resources.cpus: ..."). */
int jobspec_parse_json(json_t *root, struct jobspec **out, struct err *e);
int jobspec_parse(const char *text, size_t len, struct jobspec **out,
                  struct err *e);
void jobspec_free(struct jobspec *s);
/* The `spark` object (jobspec-spark.c); errors name "spark.<field>". */
int jobspec_parse_spark(json_t *root, struct jobspec *s, struct err *e);
/* `nodes`, `processes_per_node`, `outputs_from` (jobspec-nodes.c); runs
 * after `network` and `launcher` are known. */
int jobspec_parse_nodes(json_t *root, struct jobspec *s, struct err *e);
/* The `metrics` object (jobspec-metrics.c); errors name "metrics.<field>". */
int jobspec_parse_metrics(json_t *root, struct jobspec *s, struct err *e);
/* Compile a metrics regex (PCRE2); TERR_INVAL naming metrics.regex when it
 * does not compile or has no named group.  *out (when out is not NULL)
 * gets the pcre2_code, freed with pcre2_code_free. */
int jobspec_metrics_compile(const char *pattern, void **out, struct err *e);
/* True for a master this launcher drives: yarn, local, local[N],
 * spark://host:port (the agent's spark_master is checked the same way). */
bool jobspec_spark_master_ok(const char *master);

const char *jobspec_launcher_name(enum launcher_kind k);
const char *jobspec_env_name(enum env_kind k);
/* Look up a secret's value by name; NULL when absent. */
const char *jobspec_secret(const struct jobspec *s, const char *name);
/* True when a path is relative, normalised and has no ".." component. */
bool path_is_safe_relative(const char *p);

#endif
