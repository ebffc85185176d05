"""Corrupted or missing agent state (issue 13, item 8).

Scenario, per case: a job that prints timestamps for ~8 s runs (lease 3 s,
one retry); the agent is killed -9; its agent.db is deleted, or
overwritten with garbage, or the attempt's files (state.json, lease,
events) are corrupted; the agent is started again.
Pass criterion: the agent starts (a corrupt agent.db is set aside, not
fatal); it reconciles with the workspace and the runner it finds, and the
job ends succeeded; never do two attempts run at once (every timestamp of
attempt 1 precedes every timestamp of attempt 2); the job is never run
twice on this node at the same time (one supervising runner per job)."""
import os
import time

import pytest

from harness.agent import Agent, stamps
from harness.workspace import Workspace

JOB = "i=0; while [ $i -lt 40 ]; do date +%s.%N; i=$((i+1)); sleep 0.2; done"


def garbage(path, n=4096):
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        f.write(os.urandom(n))


def corrupt_db(ag, job):
    for suffix in ("-wal", "-shm"):
        if os.path.exists(ag.state_dir + "/agent.db" + suffix):
            os.unlink(ag.state_dir + "/agent.db" + suffix)
    garbage(os.path.join(ag.state_dir, "agent.db"))


def delete_db(ag, job):
    for suffix in ("", "-wal", "-shm"):
        p = os.path.join(ag.state_dir, "agent.db" + suffix)
        if os.path.exists(p):
            os.unlink(p)


def corrupt_attempt(ag, job):
    d = ag.attempt_dir(job)
    with open(os.path.join(d, "state.json"), "w") as f:
        f.write('{"pid": ')
    with open(os.path.join(d, "lease"), "w") as f:
        f.write("not a deadline\n")
    with open(os.path.join(d, "events"), "ab") as f:
        f.write(b'{"seq": "x", garbage\n\xff\xfe\n')


CASES = {"agent.db deleted": delete_db, "agent.db garbage": corrupt_db,
         "attempt files garbage": corrupt_attempt}


@pytest.mark.parametrize("case", list(CASES))
def test_agent_recovers_from_broken_state(case):
    ws = Workspace(lease_ttl="3s", lost_grace="1s", lost_margin="500ms").start()
    ag = Agent(ws)
    try:
        ag.start()
        job = ws.submit(name="stamps", command=["sh", "-c", JOB], retries=1)
        ag.wait_job(job, "running", timeout=30)
        time.sleep(1)
        ag.kill9()
        CASES[case](ag, job)
        ag.start(wait_registered=False)  # raises if the agent exits
        time.sleep(0.5)
        assert ag.alive(), ag.output()[-3000:]
        j = ag.wait_job(job, "succeeded", timeout=60)
        logs = [stamps(ag.ws_log(job, attempt=a["attempt"])) for a in j["attempts"]]
        for earlier, later in zip(logs, logs[1:]):
            if earlier and later:
                assert max(earlier) < min(later), (case, j["attempts"])
    finally:
        ag.kill9()
        ws.stop()
