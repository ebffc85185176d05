/* cli.h: the `tether` command-line client: settings, the HTTP client
 * (libcurl easy), and the subcommand table.
 *
 * Each subcommand lives in its own cmd-<name>.c and exports one
 * `const struct cmd_entry cmd_<name>_entry` (common/cmd.h) listed in
 * cmd_table (table.c); struct cmd_ctx is the client's settings. */
#ifndef TETHER_CLI_H
#define TETHER_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/cmd.h"
#include "common/err.h"

/* Exit codes (docs/cli.md). */
enum cli_exit {
	EXIT_OK = 0,
	EXIT_FAILED = 1, /* a command failed; submit --follow: the job failed */
	EXIT_USAGE = 2,  /* bad command line */
	EXIT_UNREACHABLE = 3, /* cannot reach the workspace (network, TLS) */
	EXIT_AUTH = 4,        /* the workspace refused the token (401/403) */
	EXIT_NOTFOUND = 5,    /* no such job, agent, output (404) */
	EXIT_REJECTED = 6, /* the workspace refused the request (400/409/413) */
	EXIT_CANCELLED = 7, /* submit --follow: the job was cancelled */
};

struct cmd_ctx {
	char *url;   /* https://host:port (no trailing slash) */
	char *token; /* admin token */
	char *ca;    /* CA file, or NULL for the system store */
	bool json;   /* --json: machine-readable output */
	const char *prog;
	/* one libcurl handle for every call of the command (client.c): its
	 * connection, TLS session and CA store carry over, so `logs -f`
	 * and other loops do not pay a TCP and TLS handshake per request */
	void *curl;
};

extern const struct cmd_entry *const cmd_table[];

/* config.c: flags > TETHER_WORKSPACE/TETHER_TOKEN/TETHER_CA > cli.conf */
int cli_config_load(struct cmd_ctx *c, struct err *e);
void cli_free(struct cmd_ctx *c);

/* client.c */
struct http_reply {
	long status;
	struct buf body;
	char *log_length;   /* Tether-Log-Length */
	char *final_length; /* Tether-Log-Final-Length (the attempt ended) */
	char *attempt;      /* Tether-Attempt */
	bool complete;      /* Tether-Log-Complete: 1 */
	char *sha256;       /* Tether-Sha256 */
	int64_t streamed;   /* 2xx body bytes written to the stream's file */
	bool out_error;     /* writing them failed (the transfer stopped) */
};

/* One request; body may be NULL.  Network/TLS failures return TERR_NET. */
int http_call(struct cmd_ctx *c, const char *method, const char *path,
              const void *body, size_t len, const char *ctype, long timeout_s,
              struct http_reply *r, struct err *e);
/* Upload a file as the body (POST). */
int http_upload(struct cmd_ctx *c, const char *path, const char *file,
                struct http_reply *r, struct err *e);
/* Stream a GET into an open file; r->body stays empty on 2xx. */
int http_download(struct cmd_ctx *c, const char *path, FILE *out,
                  struct http_reply *r, struct err *e);
/* The same for a log being followed: the bytes are written out (and
 * flushed) as they arrive, at most 20 ms or 1 MiB after, with the reply's
 * time limit; r->streamed counts the bytes written, also when the transfer
 * breaks off. */
int http_stream(struct cmd_ctx *c, const char *path, long timeout_s, FILE *out,
                struct http_reply *r, struct err *e);
void http_reply_free(struct http_reply *r);

/* JSON call: body (may be NULL) is sent, the 2xx reply parsed into *out.
 * A non-2xx reply becomes an error naming the workspace's message and
 * the return is the exit code to use (EXIT_*), never 0. */
int api_json(struct cmd_ctx *c, const char *method, const char *path,
             json_t *body, json_t **out);
/* api_json, then print the reply: as JSON with --json, else with print.
 * The exit code. */
int api_show(struct cmd_ctx *c, const char *method, const char *path,
             json_t *body, void (*print)(json_t *reply));
/* api_json (no body), then print the reply as JSON with --json, else the
 * line fmt says (what was done: "agent x: revoked").  The exit code. */
int api_done(struct cmd_ctx *c, const char *method, const char *path,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A print for api_show: the reply's "token" on a line. */
void api_print_token(json_t *reply);
/* Print an error for a failed call and give its exit code. */
int api_fail(struct cmd_ctx *c, const struct http_reply *r, const struct err *e,
             int rc);

/* follow.c: print an attempt's log (from offset 0) to out; with follow,
 * keep reading until the job ends, moving to new attempts.  *state gets
 * the job's final state (heap) when known. */
int follow_log(struct cmd_ctx *c, int64_t job, int64_t attempt, bool follow,
               FILE *out, char **state);
/* follow_log of rank `rank` (>= 0) of the attempt's gang, or of the job's
 * current gang (attempt 0); rank -1: follow_log. */
int follow_log_rank(struct cmd_ctx *c, int64_t job, int64_t attempt,
                    int64_t rank, bool follow, FILE *out, char **state);
/* follow-ranks.c: every rank's log of the attempt's gang (the current one
 * when attempt is 0), each line prefixed "[rank k] " (docs/cli.md). */
int follow_all_ranks(struct cmd_ctx *c, int64_t job, int64_t attempt,
                     bool follow, FILE *out, char **state);
/* Exit code for a job's final state (submit --follow). */
int exit_for_state(const char *state);
/* queued, assigned, running or cancelling: the job may still change */
bool job_state_live(const char *state);
int job_state(struct cmd_ctx *c, int64_t job, char **state, int64_t *att,
              int64_t *nodes);

/* pack.c: tar.gz of dir (honouring .gitignore and .tetherignore) into
 * the file out_path; fails over max_bytes of input. */
int pack_dir(const char *dir, const char *out_path, int64_t max_bytes,
             struct err *e);

/* ignore.c */
struct ignore;
struct ignore *ignore_load(const char *dir);
bool ignore_match(const struct ignore *ig, const char *rel, bool is_dir);
void ignore_free(struct ignore *ig);

/* columns.c: a table sized to its contents, printed with two blanks
 * between columns; cells are copied (NULL shows as "-"). */
struct columns;
struct columns *columns_new(size_t ncol, const char *const *header);
void columns_add(struct columns *t, const char *const *row);
void columns_print(const struct columns *t, FILE *out);
void columns_free(struct columns *t);

/* util */
int64_t cli_parse_id(const char *s);
void cli_print_json(json_t *v);
void cli_usage(const struct cmd_entry *ce, FILE *f);

#endif
