/* jobspec-nodes.c: the job spec's multi-node fields (docs/multi-node.md).
 *
 * `nodes` (the gang size: one rank per agent), `processes_per_node` and
 * `outputs_from`.  A gang needs the network between its nodes, so
 * `network: none` with more than one node is refused here, at submit; the
 * slurm and spark launchers run one agent's cluster and take no gang. */
#include "common/err.h"
#include "common/jobspec.h"
#include "common/json.h"

#include <string.h>

#define MAX_NODES 256
#define MAX_PPN   1024

int jobspec_parse_nodes(json_t *root, struct jobspec *s, struct err *e)
{
	const char *of = NULL;
	int r;

	s->nodes = 1;
	s->processes_per_node = 1;
	s->outputs_all = false;
	if ((r = json_get_int(root, "", "nodes", false, 1, MAX_NODES, &s->nodes,
	                      e)) < 0 ||
	    (r = json_get_int(root, "", "processes_per_node", false, 1, MAX_PPN,
	                      &s->processes_per_node, e)) < 0 ||
	    (r = json_get_str(root, "", "outputs_from", false, 16, &of, e)) < 0)
		return r;
	if (of != NULL && strcmp(of, "all") == 0)
		s->outputs_all = true;
	else if (of != NULL && strcmp(of, "rank0") != 0)
		return err_set(e, TERR_INVAL,
		               "outputs_from: expected \"rank0\" or \"all\"");
	/* the sandbox's init starts the copies (docs/multi-node.md) */
	if (s->processes_per_node > 1 && s->launcher != LAUNCHER_DEFAULT &&
	    s->launcher != LAUNCHER_SANDBOX)
		return err_set(e, TERR_INVAL,
		               "processes_per_node: more than one process per "
		               "node runs with the sandbox launcher only, not "
		               "\"%s\"",
		               jobspec_launcher_name(s->launcher));
	if (s->nodes == 1)
		return 0;
	if (s->network == NET_NONE)
		return err_set(
		    e, TERR_INVAL,
		    "network: \"none\" cannot be used with nodes: %lld "
		    "(the ranks talk over the network); use \"host\"",
		    (long long)s->nodes);
	if (s->launcher == LAUNCHER_SLURM || s->launcher == LAUNCHER_SPARK)
		return err_set(e, TERR_INVAL,
		               "nodes: launcher \"%s\" takes one node per job; "
		               "use slurm.nodes or spark.executors instead",
		               jobspec_launcher_name(s->launcher));
	/* a docker job is on docker's bridge network: the other ranks could
	 * not reach it at its node's address */
	if (s->launcher == LAUNCHER_DOCKER)
		return err_set(e, TERR_INVAL,
		               "nodes: the ranks of a multi-node job run with "
		               "the sandbox launcher (a docker job is not "
		               "reachable at its node's address)");
	return 0;
}
