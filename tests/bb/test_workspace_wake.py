"""Wake only who can act (issue 22, docs/performance.md F2): with 1,000
agents' lease polls parked, a submit resumes only the polls of agents
that could take the job, a drain only that agent's poll, a log append only
that job's readers.  Counted as handler runs (GET /api/v1/stats), not
time."""
import asyncio
import json
import ssl
import threading
import time

from harness.common import wait_until
from harness.workspace import Workspace

N = 1000
GPU = 10  # the first GPU agents carry the label "gpu"


class Conn:
    """One keep-alive HTTPS connection (asyncio), enough for JSON calls."""

    def __init__(self, port, ctx):
        self.port, self.ctx, self.r, self.w = port, ctx, None, None

    async def call(self, method, path, token, body=None):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(
                "127.0.0.1", self.port, ssl=self.ctx,
                server_hostname="127.0.0.1")
        data = json.dumps(body).encode() if body is not None else b""
        self.w.write(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Tether-Protocol: 1\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n"
                      % (method, path, token, len(data))).encode() + data)
        await self.w.drain()
        status = int((await self.r.readline()).split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        raw = await self.r.readexactly(length)
        return status, json.loads(raw) if raw else None


class Fleet:
    """N registered agents, each holding one parked lease poll (wait 60 s)
    on its own connection, in a thread of its own."""

    def __init__(self, ws):
        self.ws = ws
        self.got = {}  # agent name -> the jobs its poll answered with
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.th = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.th.start()

    def start(self):
        self.fut = asyncio.run_coroutine_threadsafe(self.main(), self.loop)

    async def main(self):
        ctx = ssl.create_default_context(cafile=self.ws.ca_file)
        tok = self.ws.token(uses=N, ttl=3600)
        conns = [Conn(self.ws.port, ctx) for _ in range(N)]
        secrets = []
        for i in range(N):
            name = "sim-%04d" % i
            body = {"name": name, "version": "0.1.0", "protocol": 1,
                    "labels": ["gpu"] if i < GPU else [],
                    "capacity": {"cpus": 2, "memory": 4 << 30,
                                 "disk": 10 << 30}, "queue_depth": 1}
            st, b = await conns[i].call("POST", "/api/v1/agents/register",
                                        tok, body)
            assert st == 201, b
            secrets.append((name, b["secret"]))
        self.ready.set()
        await asyncio.gather(*(self.poll(c, n, s) for c, (n, s)
                               in zip(conns, secrets)))

    async def poll(self, c, name, secret):
        st, b = await c.call("POST", "/api/v1/agents/lease", secret,
                             {"wait": 60, "queue_room": 1, "running": []})
        self.got[name] = (st, b)

    def stop(self):
        self.fut.cancel()
        time.sleep(0.2)
        self.loop.call_soon_threadsafe(self.loop.stop)


def stats(ws):
    st, _, b = ws.api("GET", "/api/v1/stats")
    assert st == 200, b
    return b


def test_a_submit_with_1000_parked_polls_wakes_only_matching_agents():
    # 1,000 parked polls and the test's own connections are more than the
    # default max_connections (512); polls wait up to 60 s so that none
    # comes back by itself during the test.
    ws = Workspace(max_connections="4096", poll="60s",
                   poll_max_wait="60s").start()
    fleet = Fleet(ws)
    try:
        fleet.start()
        assert fleet.ready.wait(240)
        wait_until(lambda: stats(ws)["parked_leases"] == N, timeout=60)
        before = stats(ws)["lease_wakeups"]

        # a job only the 10 GPU agents can take: at most they wake
        job = ws.submit(name="gpu-only", command=["true"],
                        placement={"labels": ["gpu"]})
        wait_until(lambda: ws.job(job)["state"] == "assigned", timeout=30)
        time.sleep(0.5)
        woke = stats(ws)["lease_wakeups"] - before
        assert 1 <= woke <= GPU, woke
        taker = [n for n, (st, b) in fleet.got.items() if b and b["jobs"]]
        assert len(taker) == 1 and int(taker[0][4:]) < GPU, taker

        # a job nobody can take wakes nobody
        before = stats(ws)["lease_wakeups"]
        ws.submit(name="nowhere", command=["true"],
                  placement={"agent": "elsewhere"})
        time.sleep(1.5)  # past one sweeper offer (every second)
        assert stats(ws)["lease_wakeups"] - before == 0

        # a drain wakes that agent's poll alone
        before = stats(ws)["lease_wakeups"]
        st, _, b = ws.api("POST", "/api/v1/agents/sim-0500/drain", json={})
        assert st == 200, b
        wait_until(lambda: "sim-0500" in fleet.got, timeout=10)
        assert fleet.got["sim-0500"][1]["drain"] is True
        assert stats(ws)["lease_wakeups"] - before == 1
        assert stats(ws)["parked_leases"] == N - 2
    finally:
        fleet.stop()
        ws.stop()


def test_a_log_append_wakes_only_that_jobs_readers(workspace):
    sec = workspace.register("n1")
    a = workspace.submit(name="a", command=["true"])
    b = workspace.submit(name="b", command=["true"])
    got = workspace.lease(sec)["jobs"]
    assert sorted(x["job"] for x in got) == [a, b]
    res = {}

    def read(job):
        res[job] = workspace.api("GET", f"/api/v1/jobs/{job}/log?offset=0&wait=20")

    ths = [threading.Thread(target=read, args=(j,)) for j in (a, b)]
    for th in ths:
        th.start()
    wait_until(lambda: stats(workspace)["parked_log_reads"] == 2, timeout=10)
    before = stats(workspace)["log_wakeups"]
    assert workspace.append(sec, a, 1, 0, b"hello\n")[0] == 200
    ths[0].join(10)
    assert res[a][2] == b"hello\n"
    time.sleep(0.3)
    assert stats(workspace)["log_wakeups"] - before == 1
    assert stats(workspace)["parked_log_reads"] == 1
    assert workspace.append(sec, b, 1, 0, b"x")[0] == 200
    ths[1].join(10)
    assert res[b][2] == b"x"


def test_an_expired_lease_wakes_its_agents_parked_poll():
    # lease 1s, declared lost after 1 + 0.5 + 0.25 s: the settings under test
    ws = Workspace(lease_ttl="1s", lost_grace="500ms", lost_margin="250ms",
                   poll_max_wait="20s").start()
    try:
        sec = ws.register("n1")
        j = ws.submit(name="x", command=["true"])
        assert [x["job"] for x in ws.lease(sec)["jobs"]] == [j]
        t = time.monotonic()
        # parked, it listed the attempt once: nothing renews it after that
        r = ws.lease(sec, wait=15, running=[(j, 1)], queue_room=0)
        assert r["lost"] == [{"job": j, "attempt": 1}], r
        assert time.monotonic() - t < 8
    finally:
        ws.stop()
