/* slurm-capacity.c: partitions with their total and idle CPUs, memory and
 * GPUs, from `scontrol show partition -o` and `scontrol show node -o -d`. */
#include "agent/slurm-capacity.h"
#include "common/buf.h"
#include "common/cmdrun.h"
#include "common/err.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAP_CMD_TIMEOUT_MS 10000
#define CAP_OUT_MAX        (16 << 20)

static int64_t kv_int(const char *line, const char *key)
{
	char v[64];
	int64_t n = 0;

	if (!str_kv_field(line, key, v, sizeof(v)) ||
	    parse_i64(v, 0, INT64_MAX, &n, NULL) < 0)
		return 0;
	return n;
}

/* GPUs in a Gres= value: "gpu:4", "gpu:a100:2(S:0-1),gpu:v100:1". */
static int64_t gres_gpus(const char *gres)
{
	int64_t total = 0;

	for (const char *p = gres; (p = strstr(p, "gpu")) != NULL; p += 3) {
		const char *end = p + strcspn(p, ",(");
		const char *colon = NULL;
		char num[32];
		int64_t n = 0;

		if (p != gres && p[-1] != ',')
			continue;
		for (const char *q = p; q < end; q++)
			if (*q == ':')
				colon = q;
		if (colon == NULL || (size_t)(end - colon - 1) >= sizeof(num))
			continue;
		memcpy(num, colon + 1, (size_t)(end - colon - 1));
		num[end - colon - 1] = '\0';
		if (parse_i64(num, 0, 1 << 20, &n, NULL) == 0)
			total += n;
	}
	return total;
}

/* Allocated GPUs in AllocTRES= ("cpu=1,mem=1G,gres/gpu=2"). */
static int64_t alloc_gpus(const char *tres)
{
	const char *p = strstr(tres, "gres/gpu=");
	int64_t n = 0;
	char num[32];
	size_t len;

	if (p == NULL)
		return 0;
	p += strlen("gres/gpu=");
	len = strcspn(p, ",");
	if (len >= sizeof(num))
		return 0;
	memcpy(num, p, len);
	num[len] = '\0';
	parse_i64(num, 0, 1 << 20, &n, NULL);
	return n;
}

/* True when a node state lets it take new work. */
static bool node_usable(const char *state)
{
	static const char *const bad[] = {
	    "DOWN",  "DRAIN",          "FAIL",   "MAINT",   "RESERVED",
	    "POWER", "NOT_RESPONDING", "FUTURE", "UNKNOWN", NULL};

	for (size_t i = 0; bad[i] != NULL; i++) {
		if (strstr(state, bad[i]) != NULL)
			return false;
	}
	return true;
}

/* True when name is in the comma-separated list. */
static bool in_csv(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p != NULL && *p != '\0';) {
		size_t len = strcspn(p, ",");
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

static void add(json_t *o, const char *key, int64_t v)
{
	json_int_t old = json_integer_value(json_object_get(o, key));

	json_object_set_new(o, key, json_integer(old + v));
}

static void at_least(json_t *o, const char *key, int64_t v)
{
	if (v > json_integer_value(json_object_get(o, key)))
		json_object_set_new(o, key, json_integer(v));
}

/* Add one node's record to the partition objects it belongs to. */
static void node_account(json_t *parts, const char *line)
{
	char state[128] = "", plist[1024] = "", gres[512] = "", tres[512] = "",
	     used[512] = "";
	int64_t cpus = kv_int(line, "CPUTot"), mem = kv_int(line, "RealMemory");
	int64_t gpus, busy_gpus;
	bool ok;
	size_t i;
	json_t *p;

	str_kv_field(line, "State", state, sizeof(state));
	str_kv_field(line, "Partitions", plist, sizeof(plist));
	str_kv_field(line, "Gres", gres, sizeof(gres));
	str_kv_field(line, "AllocTRES", tres, sizeof(tres));
	gpus = gres_gpus(gres);
	/* GresUsed= (scontrol -d) works without accounting; AllocTRES has
	 * gres/gpu only where AccountingStorageTRES tracks it. */
	busy_gpus = str_kv_field(line, "GresUsed", used, sizeof(used))
	                ? gres_gpus(used)
	                : alloc_gpus(tres);
	ok = node_usable(state);
	json_array_foreach(parts, i, p)
	{
		if (!in_csv(plist,
		            json_string_value(json_object_get(p, "name"))))
			continue;
		add(p, "nodes", 1);
		add(p, "cpus", cpus);
		add(p, "memory", mem << 20);
		add(p, "gpus", gpus);
		/* the largest node: what one task can get (placement) */
		at_least(p, "node_cpus", cpus);
		at_least(p, "node_memory", mem << 20);
		at_least(p, "node_gpus", gpus);
		if (!ok)
			continue;
		add(p, "idle_cpus", cpus - kv_int(line, "CPUAlloc"));
		add(p, "idle_memory", (mem - kv_int(line, "AllocMem")) << 20);
		add(p, "idle_gpus", gpus - busy_gpus);
	}
}

/* One object per `PartitionName=` record, counters at zero. */
static json_t *parse_partitions(const char *text)
{
	json_t *parts = json_array();

	for (const char *line = text; line != NULL && *line != '\0';) {
		size_t len = strcspn(line, "\n");
		char *rec = strndup(line, len), name[256], st[32] = "",
		     def[8] = "";
		if (str_kv_field(rec, "PartitionName", name, sizeof(name))) {
			str_kv_field(rec, "State", st, sizeof(st));
			str_kv_field(rec, "Default", def, sizeof(def));
			json_array_append_new(
			    parts,
			    json_pack(
			        "{s:s, s:b, s:s, s:i, s:i, s:i, s:i, s:i, "
			        "s:i, s:i, s:i, s:i, s:i}",
			        "name", name, "default",
			        strcmp(def, "YES") == 0, "state", st, "nodes",
			        0, "cpus", 0, "idle_cpus", 0, "memory", 0,
			        "idle_memory", 0, "gpus", 0, "idle_gpus", 0,
			        "node_cpus", 0, "node_memory", 0, "node_gpus",
			        0));
		}
		free(rec);
		line += len;
		if (*line == '\n')
			line++;
	}
	return parts;
}

int slurm_capacity_parse(const char *partitions_text, const char *nodes_text,
                         json_t **partitions, struct err *e)
{
	json_t *parts = parse_partitions(partitions_text);

	if (json_array_size(parts) == 0 && strstr(partitions_text, "=")) {
		json_decref(parts);
		return err_set(e, TERR_PROTO,
		               "scontrol show partition: no PartitionName");
	}
	for (const char *line = nodes_text; line != NULL && *line != '\0';) {
		size_t len = strcspn(line, "\n");
		char *rec = strndup(line, len);
		if (strstr(rec, "NodeName=") != NULL)
			node_account(parts, rec);
		free(rec);
		line += len;
		if (*line == '\n')
			line++;
	}
	*partitions = parts;
	return 0;
}

/* Run `scontrol show <what> -o -d` into out. */
static int scontrol_show(const char *what, struct buf *out, struct err *e)
{
	const char *argv[] = {"scontrol", "show", what, "-o", "-d", NULL};
	struct buf errb;
	int st = 0, r;

	buf_init(&errb, 4096);
	r = cmd_capture(argv, out, &errb, CAP_CMD_TIMEOUT_MS, &st, e);
	if (r == TERR_IO)
		r = err_set(e, TERR_UNSUPP,
		            "slurm capacity: cannot run scontrol");
	else if (r == 0 && st != 0 && st != -1)
		r = err_set(e, TERR_NET, "scontrol show %s: %s", what,
		            errb.data != NULL ? errb.data : "failed");
	buf_free(&errb);
	return r;
}

int slurm_capacity(json_t **partitions, struct err *e)
{
	struct buf parts, nodes;
	int r;

	buf_init(&parts, CAP_OUT_MAX);
	buf_init(&nodes, CAP_OUT_MAX);
	if ((r = scontrol_show("partition", &parts, e)) == 0 &&
	    (r = scontrol_show("node", &nodes, e)) == 0)
		r = slurm_capacity_parse(parts.data ? parts.data : "",
		                         nodes.data ? nodes.data : "",
		                         partitions, e);
	buf_free(&parts);
	buf_free(&nodes);
	return r;
}
