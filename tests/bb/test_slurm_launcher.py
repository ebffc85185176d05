"""The slurm launcher against a real single-node Slurm (issue 10).

Each test drives `tether-runner run DIR` with runner.launcher = "slurm" and
checks what the runner reports (result.json, events, log) against what Slurm
itself says (squeue, scontrol)."""
import os
import signal

import pytest

from harness import slurm
from harness.common import tmpdir, wait_until

# Bytes a job writes: every byte value, invalid UTF-8, a quote, no final
# newline before the last line.
PAYLOAD = (bytes(range(256)) * 3 + "héllo 'quoted' \"double\" $HOME `x`\n"
           .encode() + b"\xff\xfe broken utf-8\n")


def _attempt(cluster, spec, **settings):
    state = tmpdir("tether-slurm-state-")
    job = "S%d" % (abs(hash(str(spec))) % 100000)
    return slurm.make_attempt(state, job, spec, **settings)


def test_job_runs_through_slurm_log_exact_and_exit_code(slurm_cluster):
    d = _attempt(slurm_cluster, {
        "command": ["/usr/bin/python3", "-c",
                    "import os, sys, time\n"
                    "sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))\n"
                    "sys.stdout.flush()\n"
                    "while not os.path.exists('release'):\n"
                    "    time.sleep(0.05)\n"
                    "sys.stderr.write('to stderr\\n')\n",
                    PAYLOAD.hex()],
        "resources": {"cpus": 1, "memory": "128M"}, "timeout": "2m"})
    runner = slurm.start_runner(slurm_cluster, d)
    job_id = slurm.slurm_job_id(d)
    # Visible in squeue while it runs, and Slurm runs it as asked.
    wait_until(lambda: slurm_cluster.job(job_id).get("JobState") == "RUNNING",
               30, what="Slurm job RUNNING")
    assert job_id in slurm_cluster.queue()
    info = slurm_cluster.job(job_id)
    assert info["JobName"] == "tether-%s-1" % os.path.basename(
        os.path.dirname(d))
    assert info["MinMemoryNode"] == "128M"
    assert info["WorkDir"] == os.path.join(d, "work")
    open(os.path.join(d, "work", "release"), "w").close()
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    assert res["exit_code"] == 0
    assert slurm.job_output(d, job_id) == PAYLOAD + b"to stderr\n"
    assert slurm_cluster.job(job_id)["JobState"] == "COMPLETED"
    assert job_id not in slurm_cluster.queue()
    assert runner.stop() == 0


def test_failing_job_ends_failed_with_its_code(slurm_cluster):
    d = _attempt(slurm_cluster, {
        "command": ["/bin/sh", "-c", "echo about to fail; exit 42"]})
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    job_id = slurm.slurm_job_id(d)
    assert (res["reason"], res["exit_code"], res["signal"]) == \
        ("failed", 42, None), res
    assert slurm.job_output(d, job_id) == b"about to fail\n"
    info = slurm_cluster.job(job_id)
    assert (info["JobState"], info["ExitCode"]) == ("FAILED", "42:0")


def test_timeout_maps_to_timed_out(slurm_cluster):
    d = _attempt(slurm_cluster, {
        "command": ["/bin/sh", "-c", "echo started; sleep 300"],
        "timeout": "2s"})
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    job_id = slurm.slurm_job_id(d)
    assert res["reason"] == "timed_out", res
    assert slurm.job_output(d, job_id).startswith(b"started\n")
    assert job_id not in slurm_cluster.queue()
    # The backstop: Slurm got --time rounded up to a minute.
    assert slurm_cluster.job(job_id).get("TimeLimit") == "00:01:00"


def test_cancel_maps_to_cancelled_and_the_slurm_job_is_gone(slurm_cluster):
    d = _attempt(slurm_cluster, {
        # Ignores SIGTERM: the runner must escalate to scancel after grace.
        "command": ["/bin/sh", "-c",
                    "trap '' TERM; echo waiting; sleep 300 & wait; "
                    "sleep 300"]}, kill_grace=1)
    runner = slurm.start_runner(slurm_cluster, d)
    job_id = slurm.slurm_job_id(d)
    wait_until(lambda: slurm_cluster.job(job_id).get("JobState") == "RUNNING",
               30, what="Slurm job RUNNING")
    wait_until(lambda: b"waiting" in slurm.read_bytes(os.path.join(d, "log")),
               30, what="job output in the log")
    from harness.common import run
    run(["/usr/bin/python3", "-c",
         "import json, os, sys; p = sys.argv[1]\n"
         "open(p + '.tmp', 'w').write(json.dumps({'reason': 'cancelled', "
         "'grace': 1}))\nos.rename(p + '.tmp', p)",
         os.path.join(d, "cancel")])
    runner.signal(signal.SIGUSR1)
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "cancelled", res
    assert job_id not in slurm_cluster.queue()
    assert slurm_cluster.job(job_id)["JobState"] in ("CANCELLED", "FAILED")


def test_memory_overrun_maps_to_oom(slurm_cluster):
    if not slurm_cluster.oom_supported:
        pytest.skip("Slurm cannot report OUT_OF_MEMORY here: "
                    + slurm_cluster.oom_why)
    d = _attempt(slurm_cluster, {
        "command": ["/usr/bin/python3", "-c",
                    "import time\nheap = []\nprint('allocating', flush=True)\n"
                    "for i in range(100):\n"
                    "    heap.append(bytearray(16 << 20))\n"
                    "    time.sleep(0.02)\n"
                    "print('survived')\n"],
        "resources": {"memory": "64M"}})
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    job_id = slurm.slurm_job_id(d)
    assert slurm_cluster.job(job_id)["JobState"] == "OUT_OF_MEMORY"
    assert res["reason"] == "oom", res
    assert b"survived" not in slurm.job_output(d, job_id)


def test_sbatch_refusal_is_launch_failed(slurm_cluster):
    d = _attempt(slurm_cluster, {
        "command": ["/bin/true"],
        "slurm": {"partition": "no-such-partition"}})
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "launch_failed", res
    log = slurm.read_bytes(os.path.join(d, "log"))
    assert b"no-such-partition" in log or b"invalid partition" in log.lower()
