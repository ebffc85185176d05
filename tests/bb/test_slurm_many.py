"""50 short jobs to Slurm through 50 runners at once: every one completes,
the count matches and each result carries its own job's exit code and output
(issue 10).  More jobs than the test cluster has CPUs, so some wait PENDING
in Slurm's queue first."""
import os

from harness import slurm
from harness.common import tmpdir

N = 50


def test_fifty_short_jobs_complete_with_matching_results(slurm_cluster):
    state = tmpdir("tether-slurm-state-")
    dirs = {}
    for i in range(N):
        dirs[i] = slurm.make_attempt(state, "M%d" % i, {
            "command": ["/bin/sh", "-c",
                        'echo "job $TETHER_JOB_ID says %d"; exit %d'
                        % (i, i % 5)],
            "resources": {"cpus": 1, "memory": "32M"}},
            slurm={"poll_ms": 2000})
    runners = {i: slurm.start_runner(slurm_cluster, d) for i, d in dirs.items()}
    results = {i: slurm.wait_result(d, 240, runners[i]) for i, d in dirs.items()}
    assert len(results) == N
    job_ids = set()
    for i, res in results.items():
        want = "succeeded" if i % 5 == 0 else "failed"
        assert (res["reason"], res["exit_code"]) == (want, i % 5), (i, res)
        job_id = slurm.slurm_job_id(dirs[i])
        job_ids.add(job_id)
        assert slurm.job_output(dirs[i], job_id) == \
            b"job M%d says %d\n" % (i, i)
        assert runners[i].stop() == 0
    assert len(job_ids) == N
    assert not (job_ids & slurm_cluster.queue())
