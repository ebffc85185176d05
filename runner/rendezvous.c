/* rendezvous.c: the start barrier of a multi-node rank and the variables
 * that tell the job's processes who they are (docs/multi-node.md).
 *
 * After the source and environment phases, before the command starts, a
 * rank of a job with nodes > 1 picks a free TCP port on its node's address
 * (runner setting node_address: the agent's), reports `ready` with both
 * (an event, shipped by the agent), and waits for the agent to write
 * `rendezvous.json`: what the workspace sends once every rank of the gang
 * is ready (its rank, every rank's address, rank 0's port).  A cancel or a
 * lapsed lease while it waits stops it like any fence.  One node with
 * processes_per_node > 1 needs no barrier: its processes meet on
 * 127.0.0.1. */
#include "runner/runner.h"

#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/util.h"
#include "runner/fence.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RDV_POLL_MS  100
#define RDV_MAX      (1 << 20)
#define HOSTFILE     ".tether-hostfile"
#define HOSTFILE_JOB "/tether/work/" HOSTFILE

/* An IP literal (v4 or v6) into sa; false otherwise. */
static bool ip_parse(const char *s, struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;

	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		*len = sizeof(*v4);
		return true;
	}
	if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		*len = sizeof(*v6);
		return true;
	}
	return false;
}

/* A TCP port free now on addr (bound, read, closed: another program may
 * take it before the job binds it; documented). */
static int free_port(const char *addr, struct err *e)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int fd, port = -1;

	if (!ip_parse(addr, &sa, &len))
		return err_set(e, TERR_INVAL,
		               "node_address '%s' is not an IP address", addr);
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, len) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.ss_family == AF_INET
		                 ? ((struct sockaddr_in *)&sa)->sin_port
		                 : ((struct sockaddr_in6 *)&sa)->sin6_port);
	else
		err_set(e, TERR_INVAL,
		        "node_address %s: cannot bind a port on it (%s): is it "
		        "an address of this node?",
		        addr, strerror(errno));
	if (fd >= 0)
		close(fd);
	return port;
}

/* The interface that holds addr ("" when none does). */
static void iface_of(const char *addr, char *out, size_t size)
{
	struct sockaddr_storage want;
	struct ifaddrs *ifs = NULL, *i;
	socklen_t len;

	out[0] = '\0';
	if (!ip_parse(addr, &want, &len) || getifaddrs(&ifs) < 0)
		return;
	for (i = ifs; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL ||
		    i->ifa_addr->sa_family != want.ss_family)
			continue;
		if (want.ss_family == AF_INET
		        ? memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr,
		                 &((struct sockaddr_in *)&want)->sin_addr,
		                 4) == 0
		        : memcmp(
		              &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
		              &((struct sockaddr_in6 *)&want)->sin6_addr,
		              16) == 0) {
			snprintf(out, size, "%s", i->ifa_name);
			break;
		}
	}
	freeifaddrs(ifs);
}

struct rdv {
	int64_t rank, nodes, port;
	char **addrs; /* nodes of them */
};

static void rdv_free(struct rdv *v)
{
	runner_strv_free(v->addrs);
}

/* rendezvous.json as the agent wrote it from the workspace's reply:
 * checked whole (it decides where the job connects). */
static int rdv_read(struct runner *r, struct rdv *v, struct err *e)
{
	char *path = attempt_path(r->dir, ATTEMPT_RENDEZVOUS), *text = NULL;
	json_t *o = NULL, *list, *a;
	struct sockaddr_storage sa;
	socklen_t len;
	size_t n, i;
	int rc;

	rc = file_read_all(path, RDV_MAX, &text, &n, e);
	free(path);
	if (rc < 0)
		return rc;
	o = json_loads(text, 0, NULL);
	free(text);
	rc = err_set(e, TERR_INVAL, "rendezvous.json: not a JSON object");
	if (!json_is_object(o))
		goto out;
	if ((rc = json_get_int(o, "rendezvous", "nodes", true, 1, 256,
	                       &v->nodes, e)) < 0 ||
	    (rc = json_get_int(o, "rendezvous", "rank", true, 0, v->nodes - 1,
	                       &v->rank, e)) < 0 ||
	    (rc = json_get_int(o, "rendezvous", "master_port", true, 1, 65535,
	                       &v->port, e)) < 0)
		goto out;
	rc = err_set(e, TERR_INVAL,
	             "rendezvous.nodes: %lld, the job's nodes are %lld",
	             (long long)v->nodes, (long long)r->spec->nodes);
	if (v->nodes != r->spec->nodes)
		goto out;
	list = json_object_get(o, "addresses");
	rc = err_set(e, TERR_INVAL,
	             "rendezvous.addresses: expected %lld "
	             "addresses",
	             (long long)v->nodes);
	if (!json_is_array(list) || json_array_size(list) != (size_t)v->nodes)
		goto out;
	v->addrs = xcalloc((size_t)v->nodes + 1, sizeof(char *));
	json_array_foreach(list, i, a)
	{
		if (!json_is_string(a) ||
		    !ip_parse(json_string_value(a), &sa, &len)) {
			rc = err_set(e, TERR_INVAL,
			             "rendezvous.addresses[%zu]: not an IP "
			             "address",
			             i);
			goto out;
		}
		v->addrs[i] = xstrdup(json_string_value(a));
	}
	err_clear(e);
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static void var(char ***vars, size_t *n, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void var(char ***vars, size_t *n, const char *name, const char *fmt, ...)
{
	va_list ap;
	char val[4096];

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	char **nv = realloc(*vars, (*n + 2) * sizeof(char *));

	if (nv == NULL)
		abort();
	*vars = nv;
	(*vars)[(*n)++] = xasprintf("%s=%s", name, val);
	(*vars)[*n] = NULL;
}

/* work/.tether-hostfile (MPI: one line per node, `ADDR slots=P`), written
 * without following a link the job's source may hold under that name. */
static int write_hostfile(struct runner *r, const struct rdv *v, int procs,
                          struct err *e)
{
	int dfd =
	    open(r->work_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd = -1, rc = 0;
	char line[128];

	if (dfd < 0)
		return err_sys(e, TERR_IO, "%s", r->work_dir);
	if (unlinkat(dfd, HOSTFILE, 0) < 0 && errno != ENOENT)
		rc = err_sys(e, TERR_IO, "%s/%s", r->work_dir, HOSTFILE);
	if (rc == 0 &&
	    (fd = openat(dfd, HOSTFILE,
	                 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                 0644)) < 0)
		rc = err_sys(e, TERR_IO, "%s/%s", r->work_dir, HOSTFILE);
	for (int64_t i = 0; rc == 0 && i < v->nodes; i++) {
		snprintf(line, sizeof(line), "%s slots=%d\n", v->addrs[i],
		         procs);
		rc = fd_write_all(fd, line, strlen(line), e);
	}
	if (rc == 0 && fchown(fd, r->uid, r->gid) < 0)
		rc = err_sys(e, TERR_IO, "chown %s", HOSTFILE);
	if (fd >= 0)
		close(fd);
	close(dfd);
	return rc;
}

/* Wait for rendezvous.json; NULL when it came, else the fence's reason. */
static const char *barrier_wait(struct runner *r)
{
	char *path = attempt_path(r->dir, ATTEMPT_RENDEZVOUS);
	struct timespec ts = {0, RDV_POLL_MS * 1000000L};
	struct fence fc;
	const char *stop = NULL;

	fence_init(&fc);
	fc.timeout_deadline_ms = runner_timeout_deadline(r);
	while (access(path, F_OK) != 0) {
		fence_reload(&fc, r->dir);
		if ((stop = fence_check(&fc, now_mono_ms())) != NULL)
			break;
		nanosleep(&ts, NULL);
	}
	free(path);
	return stop;
}

int runner_rendezvous(struct runner *r, const char **stop, struct err *e)
{
	struct rdv v = {.rank = 0, .nodes = 1};
	int procs = (int)r->spec->processes_per_node;
	char ifname[IF_NAMESIZE + 1] = "lo", *ips = NULL;
	const char *addr = "127.0.0.1";
	size_t n = 0, len = 0;
	int rc = 0, port;

	if (r->spec->nodes <= 1 && procs <= 1)
		return 0;
	/* the launcher the agent chose by default (the spec's own is
	 * checked at submit, jobspec-nodes.c) */
	if (procs > 1 && r->launcher != LAUNCHER_SANDBOX)
		return err_set(e, TERR_INVAL,
		               "processes_per_node: more than one process per "
		               "node runs with the sandbox launcher only, not "
		               "%s",
		               r->set.launcher);
	if (r->spec->nodes > 1 && r->launcher != LAUNCHER_SANDBOX)
		return err_set(e, TERR_INVAL,
		               "nodes: the ranks of a multi-node job run with "
		               "the sandbox launcher only, not %s",
		               r->set.launcher);
	if (r->spec->nodes > 1) {
		if (r->set.node_address == NULL)
			return err_set(
			    e, TERR_INVAL,
			    "node_address: the agent found no address "
			    "to offer the other ranks (set "
			    "node_address)");
		addr = r->set.node_address;
	}
	if ((port = free_port(addr, e)) < 0)
		return -1;
	if (r->spec->nodes <= 1) {
		v.port = port;
		v.addrs = xcalloc(2, sizeof(char *));
		v.addrs[0] = xstrdup(addr);
	} else {
		json_t *ev = json_pack("{s:s, s:s, s:i}", "type", "ready",
		                       "address", addr, "port", port);
		rc = runner_event(r, ev, e);
		json_decref(ev);
		if (rc < 0)
			return rc;
		runner_logf(r, "tether",
		            "at the start barrier: %s (port %d) is ready; "
		            "waiting for the other ranks",
		            addr, port);
		if ((*stop = barrier_wait(r)) != NULL) {
			runner_logf(r, "tether",
			            "stopped at the start barrier: %s", *stop);
			return 0;
		}
		if ((rc = rdv_read(r, &v, e)) < 0)
			goto out;
		iface_of(addr, ifname, sizeof(ifname));
	}
	for (int64_t i = 0; i < v.nodes; i++) {
		size_t l = strlen(v.addrs[i]);
		char *grown = realloc(ips, len + l + 2);
		if (grown == NULL)
			abort();
		ips = grown;
		memcpy(ips + len, v.addrs[i], l);
		len += l;
		ips[len++] = i + 1 < v.nodes ? ',' : '\0';
	}
	if ((rc = write_hostfile(r, &v, procs, e)) < 0)
		goto out;
	r->procs = procs;
	r->rank_base = (int)(v.rank * procs);
	var(&r->rdv_vars, &n, "TETHER_NODE_RANK", "%lld", (long long)v.rank);
	var(&r->rdv_vars, &n, "TETHER_NODES", "%lld", (long long)v.nodes);
	var(&r->rdv_vars, &n, "TETHER_NODE_IPS", "%s", ips);
	var(&r->rdv_vars, &n, "TETHER_MASTER_ADDR", "%s", v.addrs[0]);
	var(&r->rdv_vars, &n, "TETHER_MASTER_PORT", "%lld", (long long)v.port);
	var(&r->rdv_vars, &n, "TETHER_PROCESSES_PER_NODE", "%d", procs);
	var(&r->rdv_vars, &n, "TETHER_HOSTFILE", "%s", HOSTFILE_JOB);
	var(&r->rdv_vars, &n, "MASTER_ADDR", "%s", v.addrs[0]);
	var(&r->rdv_vars, &n, "MASTER_PORT", "%lld", (long long)v.port);
	var(&r->rdv_vars, &n, "WORLD_SIZE", "%lld",
	    (long long)(v.nodes * procs));
	var(&r->rdv_vars, &n, "NODE_RANK", "%lld", (long long)v.rank);
	var(&r->rdv_vars, &n, "RANK", "%d", r->rank_base);
	var(&r->rdv_vars, &n, "LOCAL_RANK", "0");
	var(&r->rdv_vars, &n, "LOCAL_WORLD_SIZE", "%d", procs);
	if (ifname[0] != '\0') {
		var(&r->rdv_vars, &n, "GLOO_SOCKET_IFNAME", "%s", ifname);
		var(&r->rdv_vars, &n, "NCCL_SOCKET_IFNAME", "%s", ifname);
	}
	runner_logf(r, "tether",
	            "rendezvous: rank %lld of %lld, %d process%s each, master "
	            "%s:%lld",
	            (long long)v.rank, (long long)v.nodes, procs,
	            procs == 1 ? "" : "es", v.addrs[0], (long long)v.port);
out:
	free(ips);
	rdv_free(&v);
	return rc;
}
