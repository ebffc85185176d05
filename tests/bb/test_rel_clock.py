"""Wall clock stepped +-10 minutes mid-job (issue 13, item 9), for one
process at a time, with libfaketime (never the host clock): first the
workspace's, then the agent's (and the runners it starts).  Monotonic
clocks are left alone, as a real clock step does.

Pass criterion: the job runs to success in one attempt with its log
complete: no spurious lease expiry (lost), timeout (timed_out) or agent
marked offline."""
import os
import time

import pytest

from harness.agent import Agent
from harness.common import tmpdir, wait_until
from harness.workspace import Workspace

LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
JOB = ("echo BEGIN; i=0; while [ $i -lt 14 ]; do echo tick $i; i=$((i+1)); "
       "sleep 0.5; done; echo END")
WANT = ("BEGIN\n" + "".join(f"tick {i}\n" for i in range(14)) + "END\n").encode()


class Clock:
    """A libfaketime offset file; env() is what the stepped process gets."""

    def __init__(self):
        self.path = os.path.join(tmpdir("tether-clock-"), "offset")
        self.set("+0")

    def set(self, offset):
        with open(self.path + ".tmp", "w") as f:
            f.write(offset + "\n")
        os.replace(self.path + ".tmp", self.path)

    def env(self):
        return {"LD_PRELOAD": LIB, "FAKETIME_TIMESTAMP_FILE": self.path,
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def started_with(env, start):
    """Run start() with env added to os.environ (children inherit it)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check(ws, ag, job):
    j = ag.wait_job(job, timeout=60)
    assert j["state"] == "succeeded", j
    assert len(j["attempts"]) == 1, j
    assert WANT in ag.ws_log(job)
    st, _, agents = ws.api("GET", "/api/v1/agents")
    mine = [a for a in agents["agents"] if a["name"] == ag.name]
    assert mine and mine[0]["state"] == "online", mine


@pytest.mark.parametrize("step", ["+600", "-600"])
def test_workspace_clock_step(step):
    """The workspace's wall clock jumps by `step` seconds 2 s into the job."""
    clock = Clock()
    ws = started_with(clock.env(), lambda: Workspace(
        lease_ttl="3s", lost_grace="1s", lost_margin="500ms").start())
    try:
        ag = Agent(ws).start()
        job = ws.submit(name="clock", command=["sh", "-c", JOB], timeout="60s",
                        retries=2)
        ag.wait_job(job, "running", timeout=30)
        time.sleep(2)
        clock.set(step)
        check(ws, ag, job)
        ag.kill9()
    finally:
        ws.stop()


@pytest.mark.parametrize("step", ["+600", "-600"])
def test_agent_clock_step(workspace, step):
    """The agent's (and its runners') wall clock jumps by `step` seconds
    2 s into a job with a 20 s timeout and a 3 s lease."""
    clock = Clock()
    ag = Agent(workspace)
    started_with(clock.env(), ag.start)
    try:
        job = workspace.submit(name="clock", command=["sh", "-c", JOB],
                               timeout="20s", retries=2)
        ag.wait_job(job, "running", timeout=30)
        time.sleep(2)
        clock.set(step)
        check(workspace, ag, job)
    finally:
        ag.kill9()
