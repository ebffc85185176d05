"""agent/slurm-capacity.c against the live test cluster: the partitions with
their total and idle CPUs and memory, as the agent puts them in its
heartbeat (issue 10, capacity)."""
import json
import os

from harness import slurm
from harness.common import BUILD_DIR, run, wait_until

import pytest


def _capacity(cluster):
    exe = os.path.join(BUILD_DIR, "tests", "test_agent_slurm_capacity")
    if not os.access(exe, os.X_OK):
        pytest.skip("%s is not built" % exe)
    env = dict(os.environ)
    env.update(cluster.env)
    r = run([exe], env=env)
    line = [l for l in r.stdout.splitlines() if l.startswith("CAPACITY ")]
    assert line, r.stdout
    return {p["name"]: p for p in json.loads(line[0][len("CAPACITY "):])}


def test_capacity_reports_partitions_and_idle_resources(slurm_cluster):
    c = slurm_cluster
    parts = _capacity(c)
    debug = parts["debug"]
    assert debug["default"] is True and debug["state"] == "UP"
    assert (debug["nodes"], debug["cpus"]) == (1, c.cpus)
    assert debug["memory"] == c.real_memory << 20
    assert debug["gpus"] == debug["idle_gpus"] == len(slurm.GPU_FILES)

    # A running job takes its CPUs and memory out of the idle figures.
    d = slurm.make_attempt(slurm.tmpdir("tether-slurm-state-"), "CAP1", {
        "command": ["/bin/sh", "-c",
                    "while [ ! -e release ]; do sleep 0.05; done"],
        "resources": {"cpus": 2, "memory": "100M", "gpus": 1}})
    runner = slurm.start_runner(c, d)
    job_id = slurm.slurm_job_id(d)
    wait_until(lambda: c.job(job_id).get("JobState") == "RUNNING", 30,
               what="capacity job running")
    busy = _capacity(c)["debug"]
    assert busy["idle_cpus"] <= debug["idle_cpus"] - 2
    assert busy["idle_memory"] <= debug["idle_memory"] - (100 << 20)
    assert busy["idle_gpus"] == debug["idle_gpus"] - 1
    # the job runs in its staging work dir as the job user (docs/slurm.md)
    open(os.path.join(slurm.work_dir(d), "release"), "w").close()
    assert slurm.wait_result(d, 60, runner)["reason"] == "succeeded"
