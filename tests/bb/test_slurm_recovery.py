"""kill -9 of the runner while its Slurm job runs: a new runner on the same
attempt directory follows the same Slurm job id to the end, and the log holds
every byte of the job's output exactly once (issue 10, recovery)."""
import os
import re

from harness import slurm
from harness.common import tmpdir, wait_until

LINES = 60


def _job_lines(attempt_dir):
    data = slurm.read_bytes(os.path.join(attempt_dir, "log"))
    return re.findall(rb"line (\d{4})\n", data)


def test_kill9_runner_then_new_runner_follows_same_job(slurm_cluster):
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "R1", {
        "command": ["/bin/sh", "-c",
                    "i=1; while [ $i -le %d ]; do printf 'line %%04d\\n' $i; "
                    "i=$((i+1)); sleep 0.05; done; exit 7" % LINES],
        "timeout": "5m"})
    first = slurm.start_runner(slurm_cluster, d)
    job_id = slurm.slurm_job_id(d)
    wait_until(lambda: len(_job_lines(d)) >= 10, 30,
               what="the first lines in the log")
    first.kill9()
    assert job_id in slurm_cluster.queue(), "the Slurm job must outlive the runner"
    seen_at_kill = len(_job_lines(d))
    assert seen_at_kill < LINES, "the job ended before the kill: test too slow"

    second = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, second)
    assert second.stop() == 0
    assert slurm.read_json(os.path.join(d, "state.json"))["launcher_ref"] == job_id
    # the job's work dir is its staging one (docs/slurm.md)
    assert slurm.jobs_in_dir(slurm_cluster, slurm.work_dir(d)) == \
        [job_id], \
        "the new runner must not submit the attempt again"
    assert (res["reason"], res["exit_code"]) == ("failed", 7), res
    lines = [int(x) for x in _job_lines(d)]
    assert lines == list(range(1, LINES + 1)), \
        "log lost or repeated output across the restart: %r" % lines
    # slurm.out lived in the staging directory, which the second runner
    # removed once the job had ended (the log above holds its lines).
    assert not os.path.exists(slurm.stage_dir(d))


def test_two_restarts_and_a_job_that_ends_while_no_runner_runs(slurm_cluster):
    """Twice killed mid-output (the second follower resumes from the first
    restart's stretch of log), then the job finishes while no runner is
    alive: the third runner collects it, and every line is there once."""
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "R2", {
        "command": ["/bin/sh", "-c",
                    "i=1; while [ $i -le %d ]; do printf 'line %%04d\\n' $i; "
                    "i=$((i+1)); sleep 0.05; done; "
                    "while [ ! -e release ]; do sleep 0.05; done; "
                    "echo last" % LINES]})
    runner = slurm.start_runner(slurm_cluster, d)
    job_id = slurm.slurm_job_id(d)
    for at in (10, 30):
        wait_until(lambda: len(_job_lines(d)) >= at, 30,
                   what="%d lines in the log" % at)
        runner.kill9()
        runner = slurm.start_runner(slurm_cluster, d)
    wait_until(lambda: len(_job_lines(d)) >= LINES, 30, what="all lines")
    runner.kill9()
    # the job runs in its staging work dir (docs/slurm.md)
    open(os.path.join(slurm.work_dir(d), "release"), "w").close()
    wait_until(lambda: job_id not in slurm_cluster.queue(), 30,
               what="the Slurm job to end with no runner")
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    assert (res["reason"], res["exit_code"]) == ("succeeded", 0), res
    assert slurm.jobs_in_dir(slurm_cluster, slurm.work_dir(d)) == [job_id]
    log = slurm.read_bytes(os.path.join(d, "log"))
    assert [int(x) for x in _job_lines(d)] == list(range(1, LINES + 1))
    assert log.count(b"last\n") == 1


def test_restart_with_a_secret_in_the_output(slurm_cluster):
    """The log holds the job's output masked; resuming matches the output
    file through the same masking (no repeat of masked lines)."""
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "R3", {
        "command": ["/bin/sh", "-c",
                    "i=1; while [ $i -le %d ]; do "
                    "printf 'line %%04d %%s\\n' $i \"$TOKEN\"; "
                    "i=$((i+1)); sleep 0.05; done" % LINES],
        "secrets": {"TOKEN": "hunter2-s3cret"}})
    runner = slurm.start_runner(slurm_cluster, d)
    wait_until(lambda: len(re.findall(rb"line \d{4} \*\*\*\n", slurm.read_bytes(
        os.path.join(d, "log")))) >= 10, 30, what="masked lines in the log")
    runner.kill9()
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    log = slurm.read_bytes(os.path.join(d, "log"))
    assert b"hunter2" not in log
    got = [int(x) for x in re.findall(rb"line (\d{4}) \*\*\*\n", log)]
    assert got == list(range(1, LINES + 1))
