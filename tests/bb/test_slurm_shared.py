"""slurm.shared_dir: on a cluster that does not see the head node's state
directory, the work directory goes to shared storage before sbatch, the job
runs there, and its outputs come back into the attempt (docs/slurm.md)."""
import os

from harness import slurm
from harness.common import tmpdir
from harness.runner import JOB_USER, ensure_job_user


def test_shared_dir_holds_the_job_and_outputs_come_back(slurm_cluster):
    """...and there the job runs as the job user, not as root."""
    ensure_job_user()
    src = tmpdir("tether-slurm-src-")
    with open(os.path.join(src, "input.txt"), "w") as f:
        f.write("from the source\n")
    shared = tmpdir("tether-slurm-shared-")
    os.chmod(shared, 0o711)  # as an admin sets up shared storage
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "SH1", {
        "command": ["/bin/sh", "-c",
                    'pwd; cat input.txt; echo "$TETHER_WORK"; id -un; '
                    'echo result > "$TETHER_OUTPUTS/result.txt"'],
        "source": {"path": src}}, slurm={"shared_dir": shared})
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    job_id = slurm.slurm_job_id(d)
    assert res["reason"] == "succeeded", res
    place = os.path.join(shared, "SH1", "1")
    work = os.path.join(place, "work")
    assert slurm.job_output(d, job_id) == (
        "%s\nfrom the source\n%s\n%s\n" % (work, work, JOB_USER)).encode()
    assert slurm_cluster.job(job_id)["UserId"].startswith(JOB_USER + "(")
    assert slurm_cluster.job(job_id)["StdOut"] == os.path.join(place,
                                                                "slurm.out")
    with open(os.path.join(d, "outputs", "result.txt")) as f:
        assert f.read() == "result\n"
    assert [o["path"] for o in res["outputs"]] == ["result.txt"]
    # removed once the outputs are back; shared_dir itself stays
    assert not os.path.exists(os.path.join(shared, "SH1"))
    assert os.path.isdir(shared)


def test_shared_dir_the_job_user_cannot_enter_is_launch_failed(slurm_cluster):
    ensure_job_user()
    shared = tmpdir("tether-slurm-shared-")
    os.chmod(shared, 0o700)
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "SH2", {
        "command": ["/bin/true"]}, slurm={"shared_dir": shared})
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "launch_failed", res
    log = slurm.read_bytes(os.path.join(d, "log")).decode()
    assert "cannot enter %s" % shared in log, log
