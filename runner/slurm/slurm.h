/* slurm.h: the pieces of the slurm launcher (launcher-slurm.c).
 *
 * slurm-script.c  batch script, env file and sbatch argv (pure functions)
 * slurm-state.c   Slurm job states: query, parse, map to Tether reasons
 * slurm-follow.c  the follower thread: output file -> out pipe, end -> done
 * docs/slurm.md describes the files and the mapping. */
#ifndef TETHER_SLURM_H
#define TETHER_SLURM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct buf;
struct err;
struct runner;

/* File names in the Slurm directory of an attempt:
 * <slurm.shared_dir or <state_dir>-slurm>/<job>/<attempt> (docs/slurm.md). */
#define SLURM_SCRIPT "slurm-batch.sh"
#define SLURM_ENV    "slurm-env.sh"
#define SLURM_OUT    "slurm.out"
#define SLURM_EXIT   "slurm.exit"
#define SLURM_JSON   "slurm.json"

/* What sbatch is told; strings are borrowed. */
struct slurm_submit {
	const char *job_name, *script, *output, *chdir;
	const char *partition, *account, *qos;
	int64_t cpus, mem_mb, gpus, time_min, nodes, ntasks;
	int64_t uid, gid; /* --uid/--gid (root submitting for the job user);
	                     -1: the submitter's own */
};

/* Paths the batch script uses (absolute). */
struct slurm_paths {
	const char *dir, *work, *outputs, *checkpoints, *env_file, *exit_file;
};

/* One Slurm job's state from scontrol. */
struct slurm_info {
	bool known;      /* Slurm still knows the job */
	char state[32];  /* base state: PENDING, RUNNING, COMPLETED, ... */
	char reason[64]; /* Reason= (why pending, why it failed) */
	char node[64];   /* BatchHost= */
	int exit_code;   /* ExitCode=<code>:<signal> */
	int exit_signal;
};

enum slurm_phase { SLURM_QUEUED, SLURM_RUNNING, SLURM_ENDED };

/* The launcher's data for one attempt (r->launcher_data). */
struct slurm_job {
	char *dir; /* where the Slurm files are */
	char *script, *env_file, *out_file, *exit_file, *json_file;
	char *work, *outputs, *checkpoints; /* paths the job sees */
	char job_id[64];
	int64_t poll_ms;    /* how often scontrol is asked */
	int64_t out_offset; /* bytes of out_file already delivered */
	int64_t log_start;  /* log size when output began; -1 none yet */
	int64_t out_start;  /* out_file offset delivered at log_start */
	int64_t peak_rss;   /* highest MaxRSS sstat reported; -1 none */
	bool sstat;         /* slurm.sstat: sample MaxRSS while running */
	int log_fd;         /* the attempt log (not owned) */
	bool we_stopped;    /* signal()/kill() was used */
	bool as_user;       /* run as the job user (root runner) */
	bool collected;     /* outputs and checkpoints are back */
	bool ran;           /* Slurm was seen running it (or it wrote) */
	int hopeless_seen;  /* queries in a row: PENDING for good (stuck) */
	bool stuck;         /* Slurm will never start it: give up */
	pthread_t thread;
	bool thread_on;
	atomic_bool stop;
	atomic_bool hurry; /* stopping: ask Slurm every FOLLOW_HURRY_MS */
	int out_w, done_w; /* pipe write ends the thread feeds */
	pthread_mutex_t lock;
	struct slurm_info info; /* last state seen (under lock) */
};

/* slurm-script.c */
/* Append s to b as one single-quoted sh word ('it'\''s'). */
int slurm_quote(struct buf *b, const char *s, struct err *e);
/* The batch script: source the env file, cd, run argv, record the exit
 * code in p->exit_file, exit with it. */
int slurm_script_batch(const struct slurm_paths *p, char *const *argv,
                       const char *workdir, struct buf *out, struct err *e);
/* The env file: one export per valid NAME=value of envp, with /tether/...
 * paths rewritten to the host paths in p. */
int slurm_script_env(const struct slurm_paths *p, char *const *envp,
                     struct buf *out, struct err *e);
/* The sbatch argv (heap, NULL-terminated; free with runner_strv_free). */
char **slurm_sbatch_argv(const struct slurm_submit *s);
/* The Slurm job name squeue shows: tether-<job>-<spec name>, the name's
 * bytes other than [A-Za-z0-9._-] as '_', cut to SLURM_NAME_MAX in all
 * (heap).  The same for every runner of an attempt (reattach finds the
 * job by it and its work dir). */
#define SLURM_NAME_MAX 64
char *slurm_job_name(const char *job_id, const char *spec_name);
/* Minutes for --time: timeout rounded up, at least 1; 0 for none. */
int64_t slurm_time_minutes(int64_t timeout_ms);
/* Parse sbatch --parsable output ("123" or "123;cluster"). */
int slurm_parse_jobid(const char *text, char out[64], struct err *e);

/* slurm-state.c */
/* Parse one `scontrol show job -o` record into *info. */
int slurm_info_parse(const char *text, struct slurm_info *info, struct err *e);
/* Ask scontrol about job_id; info->known = false when Slurm forgot it. */
int slurm_info_query(const char *job_id, struct slurm_info *info,
                     struct err *e);
enum slurm_phase slurm_state_phase(const char *state);
/* True for a PENDING reason that does not clear by waiting (the request
 * does not fit the partition, the account or QOS is refused, the nodes
 * it needs are down): PartitionConfig, ReqNodeNotAvail, ... */
bool slurm_reason_hopeless(const char *reason);
/* Tether reason for a final Slurm state that the exit code does not tell
 * (TIMEOUT -> timed_out, OUT_OF_MEMORY -> oom, ...); NULL otherwise. */
const char *slurm_state_reason(const char *state, bool we_stopped);
/* Open a file of the staging directory (the job user's) for reading: a
 * regular file only, never through a symlink, never blocking on a FIFO;
 * -1 with errno otherwise. */
int slurm_open_job_file(const char *path);
/* Read the exit code the batch wrapper recorded; TERR_NOTFOUND if none. */
int slurm_exit_read(const char *path, int *code, struct err *e);
/* The id of the (last) job called name that runs in work_dir, for a
 * runner that died between sbatch and saving the id; TERR_NOTFOUND. */
int slurm_find_job(const char *name, const char *work_dir, char out[64],
                   struct err *e);
/* The batch step's peak RSS so far from sstat (needs jobacct_gather, not
 * accounting); -1 when unknown (not running, sstat missing). */
int64_t slurm_sstat_maxrss(const char *job_id);
/* scancel [--full --signal=SIG] job_id. */
int slurm_cancel(const char *job_id, const char *signame, struct err *e);

/* slurm-follow.c */
/* Start the follower thread; *out_fd / *done_fd are the read ends. */
int slurm_follow_start(struct slurm_job *j, int *out_fd, int *done_fd,
                       struct err *e);
void slurm_follow_stop(struct slurm_job *j);
/* Find how much of out_file the log already holds (reattach). */
int slurm_follow_resume_offset(struct slurm_job *j, struct runner *r,
                               struct err *e);
/* slurm.json: job id, log_start, last state. */
int slurm_json_save(struct slurm_job *j, struct err *e);
int slurm_json_load(struct slurm_job *j, struct err *e);

#endif
