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
