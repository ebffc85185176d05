/* creds.h: the agent's identity in state_dir/credentials (mode 0600) and
 * the state directory lock (agent.lock). */
#ifndef TETHER_AGENT_CREDS_H
#define TETHER_AGENT_CREDS_H

#include <sys/types.h>

struct err;

struct creds {
	char *agent_id, *secret, *workspace, *name;
};

/* TERR_NOTFOUND when the agent never registered. */
int creds_load(const char *state_dir, struct creds *c, struct err *e);
int creds_save(const char *state_dir, const struct creds *c, struct err *e);
void creds_free(struct creds *c);

/* flock state_dir/agent.lock and write our pid into it; TERR_CONFLICT
 * naming the holder's pid when another agent has it. */
int creds_lock_take(const char *state_dir, int *fd, struct err *e);
/* Pid of the agent holding the lock, 0 when none. */
pid_t creds_lock_holder(const char *state_dir);

#endif
