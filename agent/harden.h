/* harden.h: defensive checks the agent applies to what it is given:
 * lease TTLs from the workspace, a corrupt agent.db, a full state dir. */
#ifndef TETHER_AGENT_HARDEN_H
#define TETHER_AGENT_HARDEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdint.h>

/* Lease TTLs from the workspace are clamped to this range before any
 * conversion to an integer (1e300 s would be undefined behaviour). */
#define HARDEN_TTL_MIN_MS 1000LL
#define HARDEN_TTL_MAX_MS (30LL * 24 * 3600 * 1000)

/* The lease_ttl (seconds, a JSON number) as milliseconds, clamped to
 * [HARDEN_TTL_MIN_MS, HARDEN_TTL_MAX_MS]; -1 when it is missing, not a
 * number or not finite. */
int64_t harden_ttl_ms(const json_t *ttl);

/* db_open, but a corrupt agent.db ("file is not a database", "malformed")
 * is moved aside to agent.db.corrupt-<unix time> (with its -wal and -shm),
 * logged as an error, and a fresh one is created.  The agent then starts
 * as with a deleted agent.db: the workspace answers for the attempts it
 * had (lost, fenced by the lease) and an orphaned runner ends its job at
 * its lease deadline. */
struct err;
int harden_db_open(const char *path, sqlite3 **out, struct err *e);

/* Draining: true once kill_grace has passed since the drain began (the
 * first call while draining starts the clock; before the deadline, the
 * scheduling timer is armed for it).  Past the deadline the agent stops
 * waiting for the workspace: only attempts whose runner still runs keep
 * it; queued and finishing ones stay in agent.db for the next start, and
 * the outstanding lease poll is dropped on exit. */
struct agent;
bool harden_drain_overdue(struct agent *a);

/* Below state_dir_min_free (never below this many bytes) free, the state
 * dir is under pressure: the agent offers no queue room and starts no job
 * until space returns. */
#define HARDEN_DISK_MIN_FREE (4LL << 20)

/* The free bytes the state dir must keep (state_dir_min_free). */
struct agent_conf;
int64_t harden_disk_min_free(const struct agent_conf *c);

/* True when dir's filesystem has less than min_free bytes free; why (if
 * not NULL) then reads "state dir nearly full: ...". */
bool harden_disk_check(const char *dir, int64_t min_free, char *why, size_t n);

/* harden_disk_check on the agent's state dir, logging each change. */
bool harden_disk_low(struct agent *a);

/* Hand back a leased attempt this agent could not record (agent.db write
 * failed, e.g. disk full), so the workspace queues it again instead of
 * declaring it lost after the lease.  Best effort, fire and forget. */
void harden_handback(struct agent *a, const char *job, int64_t attempt,
                     const char *why);

#endif
