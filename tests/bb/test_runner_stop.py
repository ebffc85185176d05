"""Stopping a job (issue 5): cancel and timeout kill the whole tree (setsid
and double-forked children included) within grace + 1 s; an unrenewed
lease ends the job at its deadline (`lost`); the runner outlives the
process that started it."""
import os
import signal
import time

import pytest

from harness import runner as R

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

# Every process ignores SIGTERM, so only the SIGKILL after the grace ends
# them: a setsid child, a double-forked one and the job itself.
STUBBORN = """
trap '' TERM
setsid sh -c "trap '' TERM; sleep 1000" &
( sh -c "trap '' TERM; exec sleep 1000" & ) &
echo ready
sleep 1000
"""


def cgroup_pids(d):
    cg = R.state(d)["cgroup"]
    assert cg.startswith("tether-test/"), cg  # never the root cgroup
    try:
        with open(f"/sys/fs/cgroup/pids/{cg}/cgroup.procs") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def start_stubborn(d):
    p = R.start_runner(d)
    R.wait_started(d)
    # pid 1 (reaper), sh, setsid sh + sleep, double-forked sleep, sleep
    pids = R.wait_until(lambda: len(cgroup_pids(d)) >= 6 and cgroup_pids(d),
                        what="the job's processes")
    return p, pids


def test_cancel_kills_whole_tree_within_grace():
    d = R.make_attempt(["/bin/sh", "-c", STUBBORN])
    p, pids = start_stubborn(d)
    t0 = time.monotonic()
    R.write_cancel(d, grace=1)
    R.wait_until(lambda: not R.pids_alive(pids), timeout=10, what="the tree to die")
    gone = time.monotonic() - t0
    res = R.wait_result(d)
    p.stop()
    assert 0.8 <= gone <= 2.0, gone  # SIGKILL at the grace, not before
    assert res["reason"] == "cancelled"
    assert res["signal"] == signal.SIGKILL
    assert b"stopping job (cancelled): Terminated, SIGKILL in 1.0s" in R.log(d)


def test_sigusr1_and_runner_sigterm_cancel():
    d = R.make_attempt(["/bin/sh", "-c", "echo ready; exec sleep 1000"])
    p = R.start_runner(d)
    R.wait_started(d)
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)  # the runner itself asked to stop: cancel
    res = R.wait_result(d, timeout=10)
    assert time.monotonic() - t0 < 3
    assert res["reason"] == "cancelled" and res["signal"] == signal.SIGTERM
    assert p.p.wait(5) == 0


def test_timeout_kills_whole_tree_within_grace():
    d = R.make_attempt(["/bin/sh", "-c", STUBBORN], timeout=1.5,
                       runner={"kill_grace": 1})
    p, pids = start_stubborn(d)
    started = [e for e in R.events(d) if e["type"] == "started"][0]["time"]
    R.wait_until(lambda: not R.pids_alive(pids), timeout=10, what="the tree to die")
    gone = time.time() - started
    res = R.wait_result(d)
    p.stop()
    assert 2.3 <= gone <= 3.5 + 0.3, gone  # timeout 1.5 + grace 1 (+ 1)
    assert res["reason"] == "timed_out"
    assert res["signal"] == signal.SIGKILL


def test_unrenewed_lease_ends_job_at_deadline():
    script = ("import signal,sys,time\n"
              "def term(*a):\n"
              "    print('TERM', int(time.monotonic()*1000), flush=True); sys.exit(5)\n"
              "signal.signal(signal.SIGTERM, term)\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    d = R.make_attempt(["/usr/bin/python3", "-c", script])
    deadline = int(R.mono_ms()) + 1500
    R.write_lease(d, deadline)
    p = R.start_runner(d)
    res = R.wait_result(d, timeout=15)
    p.stop()
    assert res["reason"] == "lost", res
    term = [ln for ln in R.log(d).decode().splitlines() if ln.startswith("TERM ")]
    assert term, R.log(d)
    at = int(term[0].split()[1])
    assert deadline <= at <= deadline + 400, at - deadline


def test_renewed_lease_keeps_job_running():
    d = R.make_attempt(["/bin/sh", "-c", "sleep 2; echo finished"])
    R.write_lease(d, R.mono_ms() + 1000)
    p = R.start_runner(d)
    R.wait_started(d)
    for _ in range(4):  # renew every 0.5 s, like an agent's heartbeat
        time.sleep(0.5)
        R.write_lease(d, R.mono_ms() + 1000)
    res = R.wait_result(d, timeout=15)
    p.stop()
    assert res["reason"] == "succeeded", (res, R.log(d))
    assert b"finished" in R.log(d)


def test_expired_lease_never_starts_job():
    d = R.make_attempt(["/bin/sh", "-c", "echo should-not-run"])
    R.write_lease(d, R.mono_ms() - 1)
    R.run_runner(d)
    res = R.result(d)
    assert res["reason"] == "lost"
    assert b"should-not-run" not in R.log(d)
    assert not any(e["type"] == "started" for e in R.events(d))


def test_runner_outlives_its_parent():
    d = R.make_attempt(["/bin/sh", "-c", "echo begin; sleep 2; echo done"])
    agent = R.start_detached(d)
    R.wait_started(d)
    runner_pid = R.state(d)["runner_pid"]
    with open(f"/proc/{runner_pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert ppid != agent.pid  # double-forked: not the agent's child
    agent.kill()  # kill -9 of the "agent"
    agent.wait()
    res = R.wait_result(d, timeout=15)
    assert res["reason"] == "succeeded"
    assert R.log(d).endswith(b"begin\ndone\n")
    R.wait_until(lambda: not R.pids_alive([runner_pid]), what="the runner to exit")


def test_hang_timeout_ends_silent_job():
    d = R.make_attempt(["/bin/sh", "-c", "echo a; sleep 0.5; echo b; exec sleep 100"],
                       hang_timeout=1.5)
    t0 = time.monotonic()
    R.run_runner(d)
    res = R.result(d)
    assert res["reason"] == "hung", res
    assert 1.9 <= time.monotonic() - t0 <= 6
    assert R.log(d).decode().count("\n") >= 2


def test_second_runner_on_same_attempt_refused():
    d = R.make_attempt(["/bin/sh", "-c", "sleep 1; echo once"])
    p = R.start_runner(d)
    R.wait_started(d)
    second = R.run_runner(d)
    assert second.returncode == 1
    assert "another runner works on this attempt" in second.stderr
    R.wait_result(d)
    p.stop()
    assert R.log(d).count(b"once") == 1


CHECKPOINTING = """
import signal, sys, time
def save(*a):
    with open("/tether/checkpoints/ckpt", "w") as f:
        f.write("step 7")
    print("checkpoint saved", flush=True)
    sys.exit(0)
signal.signal(signal.SIGUSR1, save)
print("ready", flush=True)
time.sleep(60)
"""


def test_cancel_sends_checkpoint_signal_first():
    d = R.make_attempt(["/usr/bin/python3", "-c", CHECKPOINTING],
                       checkpoint={"signal": "USR1", "grace": "3s"})
    p = R.start_runner(d)
    R.wait_until(lambda: b"ready" in R.log(d), what="the job to be ready")
    R.write_cancel(d, grace=1)
    res = R.wait_result(d)
    p.stop()
    assert res["reason"] == "cancelled"
    assert res["exit_code"] == 0  # it saved and left before the SIGKILL
    assert b"stopping job (cancelled): User defined signal 1, SIGKILL in 3.0s" in R.log(d)
    with open(os.path.join(d, "checkpoints", "ckpt")) as f:
        assert f.read() == "step 7"


def test_timeout_without_on_timeout_is_plain_term():
    d = R.make_attempt(["/bin/sh", "-c", "echo ready; exec sleep 100"], timeout=1,
                       checkpoint={"signal": "USR1", "grace": "5s"},
                       runner={"kill_grace": 1})
    R.run_runner(d)
    res = R.result(d)
    assert res["reason"] == "timed_out" and res["signal"] == signal.SIGTERM
    assert b"stopping job (timed_out): Terminated, SIGKILL in 1.0s" in R.log(d)


def test_stop_right_after_started_reaches_the_job():
    """`started` means the job process exists: a cancel at once is a
    SIGTERM to the job, not one pid 1 drops (then SIGKILL after grace)."""
    for i in range(4):
        d = R.make_attempt(["/bin/sleep", "1000"], job="T%d" % i,
                            runner={"kill_grace": 20})
        p = R.start_runner(d)
        R.wait_until(lambda: os.path.exists(R.path(d, "events")) and any(
            e["type"] == "started" for e in R.events(d)), 30,
            interval=0.001, what="started")
        R.write_cancel(d)
        res = R.wait_result(d, 10)
        assert p.stop() == 0
        assert (res["reason"], res["signal"]) == ("cancelled", 15), res
