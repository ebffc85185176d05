/* lifecycle.h: preemption notices (preempt.c) and checkpoints
 * (checkpoint.c): docs/checkpointing.md. */
#ifndef TETHER_AGENT_LIFECYCLE_H
#define TETHER_AGENT_LIFECYCLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct agent;
struct att;
struct err;

/* preempt.c: watch the configured notice sources (scheduled-events URL,
 * file, SIGPWR).  On a notice: stop leasing (drain), tell the workspace
 * (`preempting` in the poll), and stop every running attempt with the
 * reason `preempted` within the notice window. */
int preempt_init(struct agent *a, struct err *e);
void preempt_free(struct agent *a);
bool preempt_active(const struct agent *a);
/* A notice from source; window_ms: time left before the eviction. */
void preempt_notice(struct agent *a, const char *source, int64_t window_ms);

/* checkpoint.c */
/* A leased job's resume pointer (the lease item's `checkpoint`): remember
 * it in the attempt directory (resume.json). */
void checkpoint_note_lease(struct att *t, json_t *job);
/* Before launch: download the resume checkpoint into checkpoint.tar.gz
 * (sha256 checked).  True while the download keeps the launch waiting
 * (launch_start is called again when it ends). */
bool checkpoint_fetch(struct agent *a, struct att *t);
/* A finishing attempt: pack and upload its checkpoint when its reason
 * asks for one (preempted, hung, timed_out with checkpoint.on_timeout). */
void checkpoint_kick(struct att *t);
/* True when the final event may go (no checkpoint, or it is uploaded or
 * given up). */
bool checkpoint_done(struct att *t);
void checkpoint_att_free(struct att *t);

#endif
