"""Commands that reach a running job, and how the agent stops: cancel via
the long-poll, drain on SIGTERM, stop --now / double SIGINT, revocation
(401), and an idle agent's wake-ups."""
import json
import os
import signal
import subprocess
import time

from harness.agent import Agent, stamps
from harness.common import wait_until
from harness.workspace import Workspace

TICKS = "while true; do date +%s.%N; sleep 0.1; done"


def runner_pids(ag):
    """Pids of tether-runner processes working in this agent's state dir."""
    out = subprocess.run(["pgrep", "-f", "tether-runner run " + ag.state_dir],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_cancel_reaches_job_through_long_poll():
    # A 60 s poll period and a longer lease: the poll that went out right
    # after the job was accepted is held for 60 s, so only the held
    # long-poll can explain a prompt cancel.
    ws = Workspace(lease_ttl="120s", poll="60s", poll_max_wait="60s").start()
    try:
        ag = Agent(ws, heartbeat_interval="60s").start()
        job = ws.submit(name="cancel-me", command=["sh", "-c", TICKS])
        ag.wait_job(job, "running", timeout=30)
        wait_until(lambda: len(ag.ws_log(job)) > 0 or os.path.getsize(
            os.path.join(ag.attempt_dir(job), "log")) > 0, 20,
            what="the job to print")
        time.sleep(1.0)  # the agent's poll is now held by the workspace
        t0 = time.monotonic()
        st, _, b = ws.api("POST", f"/api/v1/jobs/{job}/cancel")
        assert st == 200, b
        j = ag.wait_job(job, "cancelled", timeout=15)
        took = time.monotonic() - t0
        assert took < 8, took  # generous; latency belongs to bench/
        assert j["attempts"][-1]["reason"] == "cancelled"
        assert runner_pids(ag) == []
    finally:
        ws.stop()


def test_sigterm_drains_without_orphans(workspace, agent_factory):
    ag = agent_factory(max_jobs=1).start()
    first = workspace.submit(name="running", command=["sh", "-c",
                                                      "sleep 2; echo done"])
    ag.wait_job(first, "running", timeout=30)
    second = workspace.submit(name="waiting", command=["true"])
    wait_until(lambda: ag.local_state(second) == "queued", 10,
               what="the second job to wait in the agent's queue")
    ag.signal(signal.SIGTERM)
    assert ag.wait_exit(timeout=30) == 0
    j = ag.job(first)
    assert j["state"] == "succeeded", j
    assert b"done\n" in ag.ws_log(first)
    # The queued one went back to the workspace, not lost on this node.
    j2 = ag.job(second)
    assert j2["state"] == "queued", j2
    assert runner_pids(ag) == []
    out = subprocess.run(["pgrep", "-f", "sleep 2; echo done"],
                         capture_output=True, text=True).stdout
    assert out.strip() == ""


def test_double_sigint_leaves_runner_and_restart_reattaches(workspace,
                                                            agent_factory):
    ag = agent_factory().start()
    job = workspace.submit(name="survivor", command=[
        "sh", "-c", "echo one; sleep 3; echo two"])
    ag.wait_job(job, "running", timeout=30)
    wait_until(lambda: runner_pids(ag), 10, what="the runner")
    ag.signal(signal.SIGINT)
    wait_until(lambda: "draining" in ag.output(), 5, what="the first SIGINT")
    ag.signal(signal.SIGINT)
    assert ag.wait_exit(timeout=10) == 0
    assert runner_pids(ag), "the runner must outlive the agent"
    ag.start()
    j = ag.wait_job(job, "succeeded", timeout=30)
    assert len(j["attempts"]) == 1
    assert ag.ws_log(job).count(b"one\n") == 1
    assert b"two\n" in ag.ws_log(job)


def test_drain_now_leaves_runner(workspace, agent_factory):
    ag = agent_factory().start()
    job = workspace.submit(name="now", command=[
        "sh", "-c", "echo one; sleep 2; echo two"])
    ag.wait_job(job, "running", timeout=30)
    wait_until(lambda: runner_pids(ag), 10, what="the runner")
    r = ag.cmd("drain", "--now")
    assert "stopping" in r.stdout
    assert ag.wait_exit(timeout=10) == 0
    assert runner_pids(ag)
    ag.start()
    ag.wait_job(job, "succeeded", timeout=30)
    assert ag.ws_log(job).count(b"one\n") == 1


def test_revoked_agent_stops_leasing_job_runs_to_deadline():
    ws = Workspace(lease_ttl="4s").start()
    try:
        ag = Agent(ws).start()
        job = ws.submit(name="orphaned", command=["sh", "-c", TICKS])
        ag.wait_job(job, "running", timeout=30)
        st, _, b = ws.api("DELETE", f"/api/v1/agents/{ag.name}")
        assert st == 200, b
        revoked = time.time()
        wait_until(lambda: "refused" in ag.cmd("status").stdout, 10,
                   what="status to show the refusal")
        assert ag.alive()
        # The runner ends the job at its lease deadline, not at once.
        res = os.path.join(ag.attempt_dir(job), "result.json")
        wait_until(lambda: os.path.exists(res), 15,
                   what="the runner to stop the job at the deadline")
        with open(res) as f:
            assert json.load(f)["reason"] == "lost"
        with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
            printed = stamps(f.read())
        assert max(printed) > revoked + 1.0, (revoked, max(printed))
        # No new work for a revoked agent.
        other = ws.submit(name="never", command=["true"])
        time.sleep(2)
        assert ws.job(other)["state"] == "queued"
        assert "401" in ag.output() or "refused" in ag.output()
    finally:
        ws.stop()


def ctx_switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
    return total


def test_idle_agent_wakes_about_once_per_heartbeat():
    ws = Workspace(poll="2s", poll_max_wait="10s", lease_ttl="10s").start()
    try:
        ag = Agent(ws, heartbeat_interval="2s", log_level="info").start()
        time.sleep(3)
        before = ctx_switches(ag.pid)
        window = 10.0
        time.sleep(window)
        woke = ctx_switches(ag.pid) - before
        intervals = window / 2.0
        # One wake-up per interval: the held poll's reply arrives, the next
        # poll goes out, the loop sleeps again (measured: exactly one
        # voluntary switch per interval).  Slack of 2 for the window's
        # edges; a busy loop or a short timer would cost hundreds.
        assert woke <= intervals + 2, woke
    finally:
        ws.stop()


def test_drain_requested_by_workspace(workspace, agent_factory):
    ag = agent_factory().start()
    job = workspace.submit(name="last", command=["sh", "-c", "sleep 1; echo bye"])
    ag.wait_job(job, "running", timeout=30)
    st, _, b = workspace.api("POST", f"/api/v1/agents/{ag.name}/drain")
    assert st == 200, b
    assert ag.wait_exit(timeout=30) == 0
    assert ag.job(job)["state"] == "succeeded"
    assert "drain" in ag.output()


def test_job_submitted_right_after_one_ends_starts_without_a_heartbeat():
    # The poll held when a job ends comes back with that attempt in `lost`
    # (its final event ended it at the workspace).  That answer is news: the
    # agent polls again at once, so a job submitted just after starts
    # promptly instead of a heartbeat (60 s here) later, and the agent does
    # not mistake its own finished attempt for a lost one.
    ws = Workspace(lease_ttl="120s", poll="60s", poll_max_wait="60s").start()
    try:
        ag = Agent(ws, heartbeat_interval="60s", max_jobs=1).start()
        for i in range(3):
            job = ws.submit(name="one-%d" % i, command=["true"])
            t0 = time.monotonic()
            ag.wait_job(job, "succeeded", timeout=30)
            took = time.monotonic() - t0
            assert took < 20, (i, took)  # generous; latency belongs to bench/
            time.sleep(0.5)  # the ended attempt's `lost` reply is in
        assert "lost at the workspace" not in ag.output()
    finally:
        ws.stop()
