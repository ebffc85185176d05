"""A job handed to a dead long-poll (agent engineer's report): a poll parked
in the workspace cannot see its agent die, so after a kill -9 the workspace
may hand a new job to that poll, and the reply goes nowhere.  The restarted
agent's first poll does not list the attempt, so the workspace offers the
same attempt again: the job runs at once as attempt 1, not after the lease
TTL (and never ends lost without running)."""
import json
import os
import time

from harness.agent import Agent
from harness.workspace import Workspace


def test_job_handed_to_a_dead_poll_runs_after_restart():
    ws = Workspace(lease_ttl="60s").start()
    ag = Agent(ws)
    try:
        ag.start()
        ag.kill9()
        with open(os.path.join(ag.state_dir, "credentials")) as f:
            secret = json.load(f)["secret"]
        job = ws.submit(name="orphaned", command=["echo", "ran"], retries=0)
        # The poll the dead agent left: it takes the job; nobody reads the
        # reply.
        got = ws.lease(secret, running=[])["jobs"]
        assert [(j["job"], j["attempt"]) for j in got] == [(job, 1)]
        assert ws.job(job)["state"] == "assigned"
        t0 = time.monotonic()
        ag.start()
        j = ag.wait_job(job, "succeeded", timeout=20)
        assert time.monotonic() - t0 < 20
        assert [a["attempt"] for a in j["attempts"]] == [1], j
        assert b"ran\n" in ag.ws_log(job)
        assert "offered again" in ws.output()
    finally:
        if ag.alive():
            ag.kill9()
        ws.stop()


def test_assigned_attempt_listed_is_not_offered_twice():
    ws = Workspace().start()
    try:
        sec = ws.register()
        job = ws.submit(name="j", command=["true"])
        assert len(ws.lease(sec)["jobs"]) == 1
        r = ws.lease(sec, running=[(job, 1)])
        assert r["jobs"] == [] and r["renewed"][0]["job"] == job
    finally:
        ws.stop()
