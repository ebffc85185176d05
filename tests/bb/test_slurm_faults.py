"""Faults of the cluster itself: the controller restarts while a job runs
(the runner keeps following), and the node fails under a running job
(NODE_FAIL ends the attempt `lost`)."""
import os

from harness import slurm
from harness.common import tmpdir, wait_until

WAIT_RELEASE = ["/bin/sh", "-c",
                "echo up; while [ ! -e release ]; do sleep 0.05; done; "
                "echo released"]


def _running(cluster, spec):
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"),
                           "F%d" % (abs(hash(str(spec))) % 10000), spec)
    runner = slurm.start_runner(cluster, d)
    job_id = slurm.slurm_job_id(d)
    wait_until(lambda: cluster.job(job_id).get("JobState") == "RUNNING", 30,
               what="job running")
    return d, runner, job_id


def test_controller_restart_while_job_runs(slurm_cluster):
    c = slurm_cluster
    d, runner, job_id = _running(c, {"command": WAIT_RELEASE})
    c.restart_controller(down_seconds=2.0)
    assert c.job(job_id).get("JobState") == "RUNNING"
    assert not os.path.exists(os.path.join(d, "result.json"))
    # the job runs in its staging work dir as the job user (docs/slurm.md)
    open(os.path.join(slurm.work_dir(d), "release"), "w").close()
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    assert slurm.job_output(d, job_id) == b"up\nreleased\n"


def test_node_failure_is_lost(slurm_cluster):
    c = slurm_cluster
    d, runner, job_id = _running(c, {"command": WAIT_RELEASE})
    try:
        c.set_node("down", "tether node-failure test")
        res = slurm.wait_result(d, 60, runner)
    finally:
        c.set_node("resume")
        try:
            wait_until(lambda: c.node_state() == "idle", 60, interval=0.2,
                       what="node back to idle")
        except TimeoutError:
            raise AssertionError(c.cmd("scontrol", "show", "node").stdout
                                 + c.logs()) from None
    assert c.job(job_id)["JobState"] == "NODE_FAIL"
    assert res["reason"] == "lost", res
