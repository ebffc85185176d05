"""SIGTERM drain at awkward moments (issue 13, item 6).  The plain drain
(running job finishes, queued job handed back) is
tests/bb/test_agent_control.py::test_sigterm_drains_without_orphans.

Grace here is the agent's kill_grace (2 s in tests): the bound on exit is
kill_grace + 5 s."""
import signal
import subprocess
import time

from harness.common import wait_until

BOUND = 2 + 5


def runner_pids(ag):
    out = subprocess.run(["pgrep", "-f", "tether-runner run " + ag.state_dir],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def ran_once(ws, ag, job, marker):
    """The job's output shows its marker exactly once over all attempts."""
    j = ws.job(job)
    total = sum(ag.ws_log(job, attempt=a["attempt"]).count(marker)
                for a in j["attempts"])
    return total == 1


def test_sigterm_as_a_job_is_assigned_on_the_long_poll(workspace, agent_factory):
    """Scenario: the agent idles on its held long-poll; a job is submitted
    and SIGTERM follows at once, so the job travels in the poll's reply
    while the agent drains.  Pass: the agent exits 0 within kill_grace +
    5 s, leaves no runner; the job is not orphaned: it either ran here or
    is back in the workspace's queue, and the agent started again (if needed) runs
    it to success, its output printed once in all."""
    ag = agent_factory(max_jobs=1).start()
    time.sleep(1.5)  # the long-poll is held
    job = workspace.submit(name="assigned", command=["sh", "-c", "echo RAN-ONCE"],
                           retries=2)
    ag.signal(signal.SIGTERM)
    t0 = time.monotonic()
    assert ag.wait_exit(timeout=30) == 0
    assert time.monotonic() - t0 < BOUND
    assert runner_pids(ag) == []
    if workspace.job(job)["state"] != "succeeded":
        ag.start()  # the same node again (a second one may not register)
        ag.wait_job(job, "succeeded", timeout=30)
    assert ran_once(workspace, ag, job, b"RAN-ONCE")


def test_sigterm_while_the_workspace_does_not_answer(workspace, agent_factory):
    """Scenario: a job was just assigned and has run on the agent; the
    workspace then stops answering (SIGSTOP) with a long-poll outstanding,
    and the agent gets SIGTERM.  Pass: the agent exits within kill_grace +
    5 s anyway, leaves no runner; once the workspace answers again, a
    restart on the same state dir reports the job: succeeded, one attempt,
    run once."""
    ag = agent_factory(max_jobs=1).start()
    job = workspace.submit(name="quick", command=["sh", "-c", "echo RAN-ONCE"])
    wait_until(lambda: ag.local_state(job) in ("running", "finishing", "done"), 20,
               what="the agent to take the job")
    time.sleep(1.5)  # a new long-poll is held
    workspace.proc.signal(signal.SIGSTOP)
    try:
        ag.signal(signal.SIGTERM)
        try:
            rc = ag.wait_exit(timeout=BOUND)
        except subprocess.TimeoutExpired:
            rc = None
    finally:
        workspace.proc.signal(signal.SIGCONT)
    if rc is None:
        ag.kill9()
        raise AssertionError(f"the agent did not exit within {BOUND} s of "
                             "SIGTERM with the workspace not answering:\n"
                             + ag.output()[-1500:])
    assert rc == 0
    assert runner_pids(ag) == []
    ag.start()
    j = ag.wait_job(job, "succeeded", timeout=30)
    assert len(j["attempts"]) == 1
    assert ran_once(workspace, ag, job, b"RAN-ONCE")


def test_job_ending_after_kill_grace_is_reported_before_exit(workspace,
                                                             agent_factory):
    """Scenario: SIGTERM while a job runs longer than kill_grace (2 s here).
    Pass: the agent waits for it, and once it ends its final event still
    gets the whole grace to be answered: the agent exits 0 with the job
    `succeeded` at the workspace (it used to give the finishing attempt up
    at once, since kill_grace counted from the drain's start, and exit with
    the job still `running` there; seen as a flaky drain test over ssh)."""
    ag = agent_factory().start()
    job = workspace.submit(name="long", command=["sh", "-c",
                                                 "sleep 4; echo done"])
    ag.wait_job(job, "running", timeout=30)
    ag.signal(signal.SIGTERM)
    assert ag.wait_exit(timeout=4 + BOUND) == 0
    assert workspace.job(job)["state"] == "succeeded", workspace.job(job)
