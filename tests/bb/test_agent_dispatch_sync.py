"""The agent's dispatch path waits for the disk once (issue 23,
docs/recovery.md "Durability"): from the lease reply that hands it a job to
the fork of that job's runner, the agent syncs only the queue insert
(agent.db); spec.json, the lease file and the `running` mark are written
without a sync.  The agent's own system calls, recorded by strace, are the
evidence: between the first socket read after the submit (the reply) and
the runner's fork, one sync."""
import os
import re
import shutil
import subprocess
import time

import pytest

from harness.agent import Agent
from harness.workspace import Workspace

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the agent runs as root"),
    pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")]

CALL = re.compile(r"^(?:\d+ +)?(\w+)\(")


def test_lease_reply_to_fork_syncs_once(tmp_path):
    # A 60 s heartbeat: the agent holds its long-poll, so the job arrives
    # as that poll's reply and nothing else is in flight.
    ws = Workspace(lease_ttl="120s", poll="60s", poll_max_wait="60s").start()
    try:
        ag = Agent(ws, heartbeat_interval="60s", max_jobs=1).start()
        job = ws.submit(name="warm", command=["true"])
        ag.wait_job(job, "succeeded", timeout=60)
        time.sleep(1.0)  # the agent holds its poll again
        out = str(tmp_path / "strace.txt")
        tr = subprocess.Popen(["strace", "-o", out, "-e",
                               "trace=fsync,fdatasync,clone,clone3,fork,"
                               "vfork,recvfrom,recvmsg",
                               "-p", str(ag.pid)],
                              stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached (it prints nothing until a call)
        assert tr.poll() is None, "strace could not attach"
        job = ws.submit(name="one", command=["true"])
        ag.wait_job(job, "succeeded", timeout=60)
        tr.terminate()
        tr.wait(10)
        with open(out) as f:
            calls = [m.group(1) for m in map(CALL.match, f) if m]
    finally:
        ws.stop()
    fork = next(i for i, c in enumerate(calls)
                if c in ("clone", "clone3", "fork", "vfork"))
    # the agent was idle, holding its poll: the first socket read after
    # the submit is the reply that hands it the job
    reply = min(i for i in range(fork) if calls[i] in ("recvfrom", "recvmsg"))
    syncs = [c for c in calls[reply:fork] if c in ("fsync", "fdatasync")]
    # before: 6 (the insert, spec.json 2, lease 2, the running mark)
    assert len(syncs) == 1, calls[reply:fork]


def _agent_syncs_for_one_job(ws, ag, tmp_path, command):
    """The agent's own fsync/fdatasync calls (not its runner's) from a
    submit to the job's end at the workspace (final event acknowledged)."""
    out = str(tmp_path / "strace-whole.txt")
    tr = subprocess.Popen(["strace", "-o", out, "-e",
                           "trace=fsync,fdatasync", "-p", str(ag.pid)],
                          stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    assert tr.poll() is None, "strace could not attach"
    job = ws.submit(name="counted", command=command)
    ag.wait_job(job, "succeeded", timeout=60)
    time.sleep(0.5)  # the attempt's last commits after the reply
    tr.terminate()
    tr.wait(10)
    with open(out) as f:
        return [m.group(1) for m in map(CALL.match, f) if m]


def test_a_job_costs_the_agent_four_syncs(tmp_path):
    """Over a job's whole life the agent syncs four commits: the queue
    insert, the runner's end (`finishing`), the outputs done and the
    attempt's end (`done`).  Copying the runner's events into the outbox,
    the workspace's acknowledgements of events and log bytes and the
    `final_acked` mark commit without waiting for the disk: after a power
    loss they are taken again from the events file, by seq and by offset
    (docs/recovery.md, "Durability").  Before: 14 for a job that prints a
    line."""
    ws = Workspace(lease_ttl="120s", poll="60s", poll_max_wait="60s").start()
    try:
        ag = Agent(ws, heartbeat_interval="60s", max_jobs=1).start()
        job = ws.submit(name="warm", command=["true"])
        ag.wait_job(job, "succeeded", timeout=60)
        time.sleep(1.0)
        calls = _agent_syncs_for_one_job(
            ws, ag, tmp_path, ["sh", "-c", "echo one line"])
    finally:
        ws.stop()
    syncs = [c for c in calls if c in ("fsync", "fdatasync")]
    assert len(syncs) <= 4, calls
