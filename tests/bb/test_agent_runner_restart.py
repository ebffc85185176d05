"""A runner that dies mid-job without a result is started again by the
agent (restart.c, docs/recovery.md): the new `tether-runner run DIR`
re-attaches to the job (docker: the same container) and continues the log
and the event seq; a sandbox job cannot be re-attached and the new runner
ends it `lost`; after RESTART_MAX restarts (counted in agent.db, so an agent
crash loop does not reset it) the attempt is reported `lost`."""
import json
import os
import re
import signal
import stat

from harness import dockerd
from harness.agent import Agent
from harness.baseimage import BASE_IMAGE
from harness.common import wait_until

LINES = 100
TICKER = ("echo START; i=0; while [ $i -lt %d ]; do "
          "printf 'line %%03d\\n' $i; i=$((i+1)); sleep 0.1; done" % LINES)


def _state(ag, job):
    path = os.path.join(ag.attempt_dir(job), "state.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _restarts(ag, job):
    with ag.db() as db:
        return db.execute("SELECT runner_restarts FROM attempts WHERE job = ?"
                          " AND attempt = 1", (job,)).fetchone()[0]


def _started(cid):
    st, info = dockerd.api("GET", "/containers/%s/json" % cid)
    assert st == 200, info
    return info["State"]["StartedAt"], info["RestartCount"]


def test_kill9_agent_and_runner_docker_reattaches(workspace, docker_base):
    ag = Agent(workspace, docker_socket=dockerd.SOCKET)
    try:
        ag.start()
        job = workspace.submit(
            name="ticker", command=["sh", "-c", TICKER], launcher="docker",
            environment={"kind": "docker", "image": BASE_IMAGE})
        ag.wait_job(job, "running", timeout=60)
        logp = os.path.join(ag.attempt_dir(job), "log")
        wait_until(lambda: os.path.exists(logp) and
                   b"line 010" in open(logp, "rb").read(), 60, what="line 10")
        st = _state(ag, job)
        cid = st["launcher_ref"]
        first = _started(cid)
        ag.kill9()
        os.kill(st["runner_pid"], signal.SIGKILL)
        wait_until(lambda: not os.path.exists("/proc/%d" % st["runner_pid"]),
                   10)
        ag.start()
        wait_until(lambda: _state(ag, job).get("runner_pid", 0)
                   not in (0, st["runner_pid"]), 30, what="a new runner")
        assert _state(ag, job)["launcher_ref"] == cid
        assert _started(cid) == first and first[1] == 0, "container restarted"
        j = ag.wait_job(job, "succeeded", timeout=60)
        assert len(j["attempts"]) == 1, j
        assert "restart 1 of 3" in ag.output()
        assert _restarts(ag, job) == 1
        got = ag.ws_log(job)
        with open(logp, "rb") as f:
            node = f.read()
        assert got == node  # byte-identical to the node's log
        assert got.count(b"START\n") == 1, "job restarted"
        out = re.findall(rb"^(?:START|line \d{3})$", got, re.M)
        assert out == [b"START"] + [b"line %03d" % i for i in range(LINES)]
        assert not dockerd.container_exists(cid), "container not removed"
    finally:
        if ag.alive():
            ag.kill9()


def test_sandbox_runner_killed_ends_lost_and_requeues(workspace,
                                                      agent_factory):
    ag = agent_factory()
    ag.start()
    job = workspace.submit(name="victim", command=["sleep", "60"], retries=1)
    ag.wait_job(job, "running", timeout=30)
    wait_until(lambda: _state(ag, job).get("phase") == "run", 30,
               what="the run phase")
    pid = _state(ag, job)["runner_pid"]
    os.kill(pid, signal.SIGKILL)
    # The agent starts the runner again; it cannot re-attach to a sandbox
    # job and ends the attempt lost; the workspace retries (attempt 2).
    j = wait_until(lambda: len(ag.job(job)["attempts"]) >= 2 and ag.job(job),
                   15, what="a second attempt")
    a1 = j["attempts"][0]
    assert a1["reason"] == "lost", a1
    assert "sandbox jobs end with their runner" in (a1["message"] or ""), a1
    assert "restart 1 of 3" in ag.output()
    assert workspace.api("POST", f"/api/v1/jobs/{job}/cancel")[0] == 200
    ag.wait_job(job, "cancelled", timeout=30)


def test_restart_writes_a_lost_spec_json_again(workspace, agent_factory):
    # spec.json is written without a sync (docs/recovery.md, "Durability"):
    # a power loss may take it with the runner.  Here it is removed and the
    # runner killed; the agent writes it again from agent.db before the
    # restart, so the new runner ends the attempt as for any sandbox job
    # (without that, each restart fails to read it until the cap).
    ag = agent_factory()
    ag.start()
    job = workspace.submit(name="victim", command=["sleep", "60"], retries=1)
    ag.wait_job(job, "running", timeout=30)
    wait_until(lambda: _state(ag, job).get("phase") == "run", 30,
               what="the run phase")
    os.unlink(os.path.join(ag.attempt_dir(job), "spec.json"))
    os.kill(_state(ag, job)["runner_pid"], signal.SIGKILL)
    j = wait_until(lambda: len(ag.job(job)["attempts"]) >= 2 and ag.job(job),
                   30, what="a second attempt")
    a1 = j["attempts"][0]
    assert a1["reason"] == "lost", a1
    assert "sandbox jobs end with their runner" in (a1["message"] or ""), a1
    assert "writing it again from agent.db" in ag.output()
    assert workspace.api("POST", f"/api/v1/jobs/{job}/cancel")[0] == 200
    ag.wait_job(job, "cancelled", timeout=30)


def test_runner_that_keeps_dying_is_lost_after_the_cap(workspace, tmp_path):
    count = tmp_path / "launches"
    wrapper = tmp_path / "dying-runner"
    wrapper.write_text("#!/bin/sh\necho \"$@\" >> %s\nkill -9 $$\n" % count)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    ag = Agent(workspace, runner_path=str(wrapper),
               runner_start_timeout="1s")
    try:
        ag.start()
        job = workspace.submit(name="doomed", command=["true"], retries=0)
        wait_until(lambda: count.exists() and
                   len(count.read_text().splitlines()) >= 2, 30,
                   what="the first restart")
        ag.kill9()  # a crash loop of the agent does not reset the count
        ag.start()
        j = ag.wait_job(job, "lost", timeout=30)
        a1 = j["attempts"][0]
        assert "after 3 restarts (the limit)" in (a1["message"] or ""), a1
        launches = count.read_text().splitlines()
        assert len(launches) == 4, launches  # the first run + 3 restarts
        assert launches[0].split() == ["run", ag.attempt_dir(job)]
        assert _restarts(ag, job) == 3
    finally:
        if ag.alive():
            ag.kill9()
