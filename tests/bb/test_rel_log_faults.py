"""Log acknowledgement faults (issue 13, item 5).

Scenario: the agent talks to the workspace through FaultProxy
(harness/proxy.py), which gives each log upload the next fault of a
cycle: a 416 carrying the stored length, a duplicated delivery, a 500
after the workspace applied the bytes (reply lost), a 503 before, a slow
reply, a connection dropped after the workspace applied the bytes, and
plain success.  The job prints ~1.5 MB of numbered lines in bursts.
Pass criterion: the job succeeds in one attempt and the log the workspace
serves is byte for byte the node's log file, which holds the job's whole
output once; every fault was exercised."""
import os

from harness.agent import Agent
from harness.proxy import FaultProxy

FAULTS = ["ok", "416", "dup", "500", "503", "slow", "drop"]
JOB = ("i=0; while [ $i -lt 12 ]; do seq $((i*10000)) $((i*10000+9999)); "
       "i=$((i+1)); sleep 0.2; done; echo END")


def test_log_ack_faults_leave_the_log_byte_exact(workspace):
    fp = FaultProxy(workspace, FAULTS, slow_s=0.8)
    try:
        ag = Agent(fp.view(), log_chunk="16K").start()
        job = workspace.submit(name="ackfaults", command=["sh", "-c", JOB])
        j = ag.wait_job(job, "succeeded", timeout=120)
        assert len(j["attempts"]) == 1, j
        from harness.common import wait_until
        with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
            node = f.read()
        got = wait_until(lambda: (lambda g: g if g == node else None)(ag.ws_log(job)),
                         30, what="the workspace log to equal the node's")
        want = ("\n".join(str(n) for n in range(0, 120000)) + "\nEND\n").encode()
        assert want in got and got.count(b"\nEND\n") == 1
        assert all(fp.seen.get(f, 0) >= 1 for f in FAULTS), fp.seen
        ag.kill9()
    finally:
        fp.close()
