"""A Slurm job that Slurm holds PENDING for a reason waiting does not clear
(issue 28): the attempt ends `launch_failed` with Slurm's reason within a
minute, with no exit code (nothing ran), and the job leaves Slurm's queue.
Runner-level, against the harness's one-node cluster."""
import os
import time

from harness import slurm
from harness.common import tmpdir


def test_impossible_request_ends_launch_failed_within_a_minute(slurm_cluster):
    """Scenario: a job asks for more CPUs per task than any node of the
    partition has; sbatch takes it and Slurm holds it PENDING with reason
    PartitionConfig.  Pass: result.json within 60 s says launch_failed,
    exit_code and signal null, a message naming PartitionConfig; the log
    says why; Slurm no longer lists the job."""
    c = slurm_cluster
    d = slurm.make_attempt(tmpdir("tether-slurm-pend-"), "P1",
                           {"command": ["sh", "-c", "echo ran"],
                            "resources": {"cpus": c.cpus * 8}})
    t0 = time.monotonic()
    runner = slurm.start_runner(c, d)
    job_id = slurm.slurm_job_id(d)
    res = slurm.wait_result(d, 60, runner)
    assert time.monotonic() - t0 < 60
    assert res["reason"] == "launch_failed", res
    assert res["exit_code"] is None and res["signal"] is None, res
    assert "PartitionConfig" in (res["message"] or ""), res
    log = slurm.read_bytes(os.path.join(d, "log")).decode()
    assert ("[slurm] batch job %s ended: Slurm holds it PENDING "
            "(PartitionConfig)" % job_id) in log, log
    assert " on ?" not in log, log
    assert "ran\n" not in log, log
    assert job_id not in c.queue()


def _events(d):
    import json
    path = os.path.join(d, "events")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_pending_while_slurm_queues_it(slurm_cluster):
    """Scenario: one job holds every CPU of the cluster; a second one waits
    in Slurm's queue (PENDING, Resources), then runs once the first ends.
    Pass: the second attempt's events say `pending` with Slurm's reason
    while it waits, then `pending: false` before it ends `succeeded`."""
    from harness.common import wait_until
    c = slurm_cluster
    base = tmpdir("tether-slurm-pend-")
    hold = ["/bin/sh", "-c", "while [ ! -e release ]; do sleep 0.05; done"]
    d1 = slurm.make_attempt(base, "P2", {"command": hold,
                                         "resources": {"cpus": c.cpus}})
    r1 = slurm.start_runner(c, d1)
    j1 = slurm.slurm_job_id(d1)
    wait_until(lambda: c.job(j1).get("JobState") == "RUNNING", 30,
               what="the first job running")
    d2 = slurm.make_attempt(base, "P3", {"command": ["echo", "second"],
                                         "resources": {"cpus": 1}})
    r2 = slurm.start_runner(c, d2)
    wait_until(lambda: [e for e in _events(d2) if e["type"] == "pending"],
               30, what="a pending event")
    first = [e for e in _events(d2) if e["type"] == "pending"][0]
    assert first["pending"] is True and first["reason"], first
    # the job runs in its staging work dir as the job user (docs/slurm.md)
    open(os.path.join(slurm.work_dir(d1), "release"), "w").close()
    assert slurm.wait_result(d1, 60, r1)["reason"] == "succeeded"
    res = slurm.wait_result(d2, 60, r2)
    assert res["reason"] == "succeeded", res
    pend = [e for e in _events(d2) if e["type"] == "pending"]
    assert pend[-1]["pending"] is False, pend
