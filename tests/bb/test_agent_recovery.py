"""The agent dies (kill -9) or the workspace goes away while a job runs:
no byte of the log is lost or duplicated, the job is not restarted, and
fencing keeps an old attempt from overlapping its successor."""
import json
import os
import random
import signal
import socket
import threading
import time

from harness.agent import Agent, stamps
from harness.common import wait_until
from harness.workspace import Workspace

FIRST = 10000000
PER_BURST = 116509
BURSTS = 50
# ~52 MB of numbered lines, in 50 bursts 0.1 s apart (5+ s of output).
BIG_JOB = ("echo START-MARKER; i=0; while [ $i -lt %d ]; do "
           "seq $((%d+i*%d)) $((%d+(i+1)*%d-1)); i=$((i+1)); sleep 0.1; done"
           % (BURSTS, FIRST, PER_BURST, FIRST, PER_BURST))


def expected_output():
    last = FIRST + BURSTS * PER_BURST
    return ("\n".join(str(n) for n in range(FIRST, last)) + "\n").encode()


def test_kill9_agent_during_50mb_job(workspace, agent_factory):
    ag = agent_factory()
    ag.start()
    job = workspace.submit(name="big", command=["sh", "-c", BIG_JOB])
    ag.wait_job(job, "running", timeout=30)
    rnd = random.Random(4)
    for _ in range(4):
        time.sleep(rnd.uniform(0.3, 1.2))
        ag.kill9()
        time.sleep(rnd.uniform(0.0, 0.5))
        ag.start()
    j = ag.wait_job(job, "succeeded", timeout=120)
    assert len(j["attempts"]) == 1, j
    got = ag.ws_log(job)
    with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
        node = f.read()
    assert len(got) == len(node) and got == node
    assert got.count(b"START-MARKER") == 1  # never restarted
    assert expected_output() in got
    assert len(got) >= 50_000_000


class RefusingListener:
    """Holds the workspace's port while it is down, recording each
    connection attempt's time (and closing it at once)."""

    def __init__(self, port):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", port))
        self.s.listen(64)
        self.times = []
        self.stop_flag = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.s.settimeout(0.1)
        while not self.stop_flag:
            try:
                c, _ = self.s.accept()
            except socket.timeout:
                continue
            self.times.append(time.monotonic())
            c.close()

    def close(self):
        self.stop_flag = True
        self.t.join()
        self.s.close()


def test_workspace_outage_shorter_than_lease():
    ws = Workspace(lease_ttl="30s").start()
    try:
        ag = Agent(ws, backoff_min="200ms", backoff_max="1500ms").start()
        script = ("echo before; sleep 1.5; seq 1 100000; echo after; "
                  "echo out > $TETHER_OUTPUTS/result.txt")
        job = ws.submit(name="outage", command=["sh", "-c", script])
        ag.wait_job(job, "running", timeout=30)
        port = ws.port
        ws.stop()
        lst = RefusingListener(port)
        # The job finishes while the workspace is away.
        wait_until(lambda: os.path.exists(
            os.path.join(ag.attempt_dir(job), "result.json")), 30,
            what="the job to finish during the outage")
        time.sleep(6)
        lst.close()
        ws.start()
        j = ag.wait_job(job, "succeeded", timeout=30)
        assert len(j["attempts"]) == 1
        log = ag.ws_log(job)
        with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
            assert log == f.read()
        assert b"before\n" in log and b"after\n" in log
        assert ("\n".join(str(i) for i in range(1, 100001)) + "\n").encode() in log
        st, _, outs = ws.api("GET", f"/api/v1/jobs/{job}/outputs")
        assert [o["path"] for o in outs["outputs"]] == ["result.txt"]
        # Retries: one probe at a time, gaps growing, jittered, capped.
        gaps = [b - a for a, b in zip(lst.times, lst.times[1:])]
        assert len(gaps) >= 4, lst.times
        assert max(gaps) <= 1.5 + 1.0, gaps  # cap + scheduling slack
        assert max(gaps[-3:]) > gaps[0], gaps
        delays = ag.retry_delays()
        assert all(d <= 1500 for d in delays), delays
        assert len(set(delays[3:])) > 1, delays  # jitter
    finally:
        ws.stop()


def test_workspace_outage_longer_than_lease_fences_the_attempt():
    ws = Workspace(lease_ttl="3s", lost_grace="1s", lost_margin="500ms").start()
    try:
        ag = Agent(ws, backoff_min="200ms", backoff_max="1s",
                   kill_grace="1s").start()
        script = "while true; do date +%s.%N; sleep 0.1; done"
        job = ws.submit(name="fenced", command=["sh", "-c", script], retries=1)
        ag.wait_job(job, "running", timeout=30)
        time.sleep(1)
        ws.stop()
        down_at = time.time()
        # The runner must stop the job at its lease deadline by itself.
        res = os.path.join(ag.attempt_dir(job, 1), "result.json")
        wait_until(lambda: os.path.exists(res), 15,
                   what="the runner to end the job at the lease deadline")
        stopped_at = time.time()
        assert stopped_at - down_at < 3 + 1 + 3, (down_at, stopped_at)
        time.sleep(3)
        ws.start()
        j = wait_until(lambda: len(ws.job(job)["attempts"]) >= 2 and
                       ws.job(job), 30, what="a second attempt")
        assert j["attempts"][0]["reason"] == "lost"
        wait_until(lambda: ag.ws_log(job, attempt=2).count(b"\n") > 3, 30,
                   what="attempt 2 to print")
        with open(os.path.join(ag.attempt_dir(job, 1), "log"), "rb") as f:
            a1 = stamps(f.read())
        a2 = stamps(ag.ws_log(job, attempt=2))
        assert max(a1) < min(a2), (max(a1), min(a2))
        # attempt 1's log still reached the workspace in full
        wait_until(lambda: ag.ws_log(job, attempt=1) == open(
            os.path.join(ag.attempt_dir(job, 1), "log"), "rb").read(), 20,
            what="attempt 1's log to be complete at the workspace")
        ws.api("POST", f"/api/v1/jobs/{job}/cancel")
        ag.wait_job(job, "cancelled", timeout=30)
    finally:
        ws.stop()


def test_acked_offset_ahead_of_workspace_resyncs_on_416(workspace,
                                                        agent_factory):
    # As after a workspace restored from an older backup: the agent
    # believes more is acknowledged than the workspace has.
    ag = agent_factory()
    ag.start()
    job = workspace.submit(name="gap", command=[
        "sh", "-c", "seq 1 20000; sleep 2; seq 20001 40000"])
    ag.wait_job(job, "running", timeout=30)
    wait_until(lambda: len(ag.ws_log(job)) > 1000, 20, what="log bytes")
    ag.cmd("drain", "--now")
    assert ag.wait_exit(10) == 0
    # Past what the workspace really has: the agent's own log_acked may lag
    # the workspace (an upload landed but drain --now came before its reply),
    # so a bump relative to it alone may fall inside what is already there.
    have = len(ag.ws_log(job))
    with ag.db() as c:
        c.execute("UPDATE attempts SET log_acked = ?", (have + 5000,))
    ag.start()
    ag.wait_job(job, "succeeded", timeout=60)
    log = ag.ws_log(job)
    with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
        assert log == f.read()
    assert "log gap" in ag.output()


def test_runner_gone_while_agent_down_is_reported_lost(workspace,
                                                      agent_factory):
    ag = agent_factory()
    ag.start()
    job = workspace.submit(name="victim", command=["sleep", "30"], retries=1)
    ag.wait_job(job, "running", timeout=30)
    with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
        st = json.load(f)
    wait_until(lambda: st["runner_pid"] > 0, 5)
    ag.cmd("drain", "--now")
    assert ag.wait_exit(10) == 0
    os.kill(st["runner_pid"], signal.SIGKILL)
    wait_until(lambda: not os.path.exists(f"/proc/{st['runner_pid']}"), 10)
    ag.start()
    # The agent starts the runner again (restart.c); a sandbox job died
    # with its runner, so the new runner reports it lost; the workspace
    # retries it as attempt 2 on this agent.
    j = wait_until(lambda: len(ag.job(job)["attempts"]) >= 2 and ag.job(job),
                   30, what="a second attempt")
    assert j["attempts"][0]["reason"] == "lost"
    assert "sandbox jobs end with their runner" in (
        j["attempts"][0]["message"] or "")
    assert "restart 1 of 3" in ag.output()
    ws_cancel = workspace.api("POST", f"/api/v1/jobs/{job}/cancel")
    assert ws_cancel[0] == 200
    ag.wait_job(job, "cancelled", timeout=30)
