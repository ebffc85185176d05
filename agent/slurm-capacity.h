/* slurm-capacity.h: what a Slurm cluster behind this head node offers, for
 * the agent's heartbeat (docs/slurm.md, "Capacity"). */
#ifndef TETHER_AGENT_SLURM_CAPACITY_H
#define TETHER_AGENT_SLURM_CAPACITY_H

#include <jansson.h>

struct err;

/* Ask scontrol for the cluster's partitions and nodes; *partitions gets a
 * new JSON array, one object per partition:
 *   {"name": "debug", "default": true, "state": "UP", "nodes": 1,
 *    "cpus": 2, "idle_cpus": 1, "memory": <bytes>, "idle_memory": <bytes>,
 *    "gpus": 0, "idle_gpus": 0}
 * idle_* count only nodes that can take work (not down, drained, ...).
 * TERR_UNSUPP when scontrol is missing, TERR_NET when slurmctld does not
 * answer.  Runs two short commands (bounded by a 10 s deadline each): call
 * it from a worker or at heartbeat pace, not in a tight loop. */
int slurm_capacity(json_t **partitions, struct err *e);

/* Same, from the text of `scontrol show partition -o -d` and `scontrol show
 * node -o -d` (for tests). */
int slurm_capacity_parse(const char *partitions_text, const char *nodes_text,
                         json_t **partitions, struct err *e);

#endif
