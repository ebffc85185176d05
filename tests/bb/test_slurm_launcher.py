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
    job = os.path.basename(os.path.dirname(d))
    # tether-<job>-<spec name> (make_attempt names it slurm-test-<job>)
    assert info["JobName"] == "tether-%s-slurm-test-%s" % (job, job)
    assert info["MinMemoryNode"] == "128M"
    # The job runs in its staging directory beside the 0700 state dir, as
    # the job user (docs/slurm.md), not in the attempt's own work/.
    assert info["WorkDir"] == slurm.work_dir(d)
    open(os.path.join(slurm.work_dir(d), "release"), "w").close()
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
        "command": ["/bin/sh", "-c", "echo started; sleep 300; echo never"],
        "timeout": "2s"})
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    job_id = slurm.slurm_job_id(d)
    assert res["reason"] == "timed_out", res
    assert b"never" not in slurm.job_output(d, job_id)
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


def _write_cancel(d, grace):
    import json
    tmp = os.path.join(d, "cancel.tmp")
    with open(tmp, "w") as f:
        json.dump({"reason": "cancelled", "grace": grace}, f)
    os.rename(tmp, os.path.join(d, "cancel"))


def test_pending_job_is_queued_at_cluster_and_cancel_dequeues_it(
        slurm_cluster):
    c = slurm_cluster
    wait_job = ["/bin/sh", "-c", "while [ ! -e release ]; do sleep 0.05; done"]
    big = _attempt(c, {"command": wait_job, "resources": {"cpus": c.cpus}})
    big_runner = slurm.start_runner(c, big)
    big_id = slurm.slurm_job_id(big)
    wait_until(lambda: c.job(big_id).get("JobState") == "RUNNING", 30,
               what="the job holding every CPU to run")
    small = _attempt(c, {"command": ["/bin/echo", "never runs"],
                         "resources": {"cpus": 1}}, kill_grace=60)
    small_runner = slurm.start_runner(c, small)
    small_id = slurm.slurm_job_id(small)
    # Queued at the cluster: Slurm says PENDING and the runner records why.
    state = os.path.join(small, "slurm.json")
    wait_until(lambda: (slurm.read_json(state)["state"],
                        slurm.read_json(state)["reason"]) in
               (("PENDING", "Resources"), ("PENDING", "Priority")), 30,
               what="slurm.json to show PENDING (Resources)")
    assert not os.path.exists(os.path.join(small, "result.json"))
    # Cancel takes it out of the queue at once, not after the 60 s grace.
    _write_cancel(small, 60)
    small_runner.signal(signal.SIGUSR1)
    res = slurm.wait_result(small, 15, small_runner)
    assert res["reason"] == "cancelled", res
    assert small_id not in c.queue()
    assert c.job(small_id)["JobState"] == "CANCELLED"
    assert b"never runs" not in slurm.read_bytes(os.path.join(small, "log"))
    # the job runs in its staging work dir (docs/slurm.md)
    open(os.path.join(slurm.work_dir(big), "release"), "w").close()
    assert slurm.wait_result(big, 60, big_runner)["reason"] == "succeeded"


def test_peak_memory_from_sstat(slurm_cluster):
    """No slurmdbd, but jobacct_gather feeds sstat: with slurm.sstat on, the
    runner samples the batch step's MaxRSS while it runs and reports the
    peak."""
    d = _attempt(slurm_cluster, {
        "command": ["/usr/bin/python3", "-c",
                    "import os, time\nheld = bytearray(60 << 20)\n"
                    "for i in range(0, len(held), 4096): held[i] = 1\n"
                    "while not os.path.exists('release'):\n"
                    "    time.sleep(0.05)\n"],
        "resources": {"memory": "256M"}}, slurm={"sstat": True})
    runner = slurm.start_runner(slurm_cluster, d)
    state = os.path.join(d, "slurm.json")
    try:
        wait_until(lambda: slurm.read_json(state)["peak_rss"] >= 60 << 20,
                   30, what="the runner to see 60 MiB in sstat")
    except TimeoutError as exc:
        raise AssertionError("%s\nlog: %r\nrunner: %s" % (
            exc, slurm.read_bytes(os.path.join(d, "log")),
            runner.output())) from None
    # the job runs in its staging work dir (docs/slurm.md)
    open(os.path.join(slurm.work_dir(d), "release"), "w").close()
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    assert 60 << 20 <= res["peak_memory_bytes"] < 256 << 20, res


def test_gpus_become_gres(slurm_cluster):
    """resources.gpus: N -> --gres=gpu:N; Slurm allocates N of the test
    cluster's stand-in GPUs and the job sees CUDA_VISIBLE_DEVICES."""
    d = _attempt(slurm_cluster, {
        "command": ["/bin/sh", "-c",
                    'echo "gpus=$CUDA_VISIBLE_DEVICES"; '
                    "while [ ! -e release ]; do sleep 0.05; done"],
        "resources": {"gpus": 2}})
    runner = slurm.start_runner(slurm_cluster, d)
    job_id = slurm.slurm_job_id(d)
    wait_until(lambda: slurm_cluster.job(job_id).get("JobState") == "RUNNING",
               30, what="GPU job running")
    assert slurm_cluster.job(job_id)["TresPerNode"] == "gres:gpu:2"
    # the job runs in its staging work dir (docs/slurm.md)
    open(os.path.join(slurm.work_dir(d), "release"), "w").close()
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    assert slurm.job_output(d, job_id) == b"gpus=0,1\n"
