/* Unit tests of agent/slurm-capacity.c: partitions from scontrol records,
 * and (when a Slurm cluster answers, e.g. under the bb harness with
 * SLURM_CONF set) from the live cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/slurm-capacity.h"
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PARTS =
    "PartitionName=cpu AllowGroups=ALL Default=YES State=UP Nodes=n[1-2]\n"
    "PartitionName=gpu AllowGroups=ALL Default=NO State=UP Nodes=g1\n";
static const char *const NODES =
    "NodeName=n1 CPUAlloc=3 CPUTot=8 Gres=(null) RealMemory=1000 "
    "AllocMem=400 State=MIXED Partitions=cpu AllocTRES=cpu=3\n"
    "NodeName=n2 CPUAlloc=0 CPUTot=8 Gres=(null) RealMemory=1000 "
    "AllocMem=0 State=DOWN+NOT_RESPONDING Partitions=cpu AllocTRES=\n"
    "NodeName=g1 CPUAlloc=2 CPUTot=16 Gres=gpu:a100:4(S:0-1) "
    "RealMemory=2000 AllocMem=0 State=MIXED Partitions=gpu,cpux "
    "AllocTRES=cpu=2,gres/gpu=1\n"
    "NodeName=g2 CPUAlloc=0 CPUTot=4 Gres=gpu:2 GresUsed=gpu:2(IDX:0-1) "
    "RealMemory=100 AllocMem=0 State=MIXED Partitions=gpu AllocTRES=\n";

static json_int_t num(json_t *p, const char *key)
{
	return json_integer_value(json_object_get(p, key));
}

static void test_parse(void **state)
{
	json_t *parts = NULL, *cpu, *gpu;
	struct err e = {0};

	(void)state;
	assert_int_equal(slurm_capacity_parse(PARTS, NODES, &parts, &e), 0);
	assert_int_equal(json_array_size(parts), 2);
	cpu = json_array_get(parts, 0);
	gpu = json_array_get(parts, 1);
	assert_string_equal(json_string_value(json_object_get(cpu, "name")),
	                    "cpu");
	assert_true(json_is_true(json_object_get(cpu, "default")));
	assert_int_equal(num(cpu, "nodes"), 2);
	assert_int_equal(num(cpu, "cpus"), 16);
	assert_int_equal(num(cpu, "idle_cpus"), 5); /* n2 is down */
	assert_int_equal(num(cpu, "memory"), 2000LL << 20);
	assert_int_equal(num(cpu, "idle_memory"), 600LL << 20);
	assert_int_equal(num(cpu, "gpus"), 0);
	assert_false(json_is_true(json_object_get(gpu, "default")));
	assert_int_equal(num(gpu, "cpus"), 20);
	assert_int_equal(num(gpu, "idle_cpus"), 18);
	/* g1: 4 - 1 from AllocTRES; g2: 2 - 2 from GresUsed (scontrol -d) */
	assert_int_equal(num(gpu, "gpus"), 6);
	assert_int_equal(num(gpu, "idle_gpus"), 3);
	json_decref(parts);
}

static void test_live_cluster(void **state)
{
	json_t *parts = NULL;
	struct err e = {0};

	(void)state;
	if (getenv("SLURM_CONF") == NULL) {
		skip(); /* the bb tests check a live cluster */
		return;
	}
	assert_int_equal(slurm_capacity(&parts, &e), 0);
	char *text = json_dumps(parts, JSON_COMPACT);
	printf("CAPACITY %s\n", text); /* tests/bb/test_slurm_capacity.py */
	fflush(stdout);
	free(text);
	assert_true(json_array_size(parts) >= 1);
	assert_true(num(json_array_get(parts, 0), "cpus") >= 1);
	json_decref(parts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_live_cluster),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
