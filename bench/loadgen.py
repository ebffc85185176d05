#!/usr/bin/python3
"""Load generator for metric 8: N simulated agents, each on its own
keep-alive TLS connection, register and then hold the lease long-poll in a
loop (the poll is the heartbeat); a job handed to one is acknowledged
with a `started` and a `final` event at once.  Meanwhile one admin
connection submits jobs at a steady rate, and the dispatch latency of each
(submit sent -> a simulated agent has it) is recorded.

Output (stdout): one JSON object with the latencies, the counts and this
process's own CPU time, so the caller can tell whether the generator was
the bottleneck.  asyncio, one thread.

Usage: loadgen.py --port P --ca CA --admin TOKEN --agents N --jobs M
                  --wait S --rate R [--budget S]"""
import argparse
import asyncio
import json
import resource
import ssl
import sys
import time


class Conn:
    def __init__(self, port, ctx):
        self.port, self.ctx = port, ctx
        self.r = self.w = None

    async def open(self):
        self.r, self.w = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.ctx, server_hostname="127.0.0.1")

    async def call(self, method, path, token, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        head = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTether-Protocol: 1\r\n"
                "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (method, path, token, len(data)))
        if self.w is None:
            await self.open()
        self.w.write(head.encode() + data)
        await self.w.drain()
        status = int((await self.r.readline()).split()[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            k, v = k.strip().lower(), v.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v:
                chunked = True
            elif k == "connection" and v == "close":
                close = True
        if chunked:
            raw = b""
            while True:
                n = int((await self.r.readline()).strip(), 16)
                if n == 0:
                    await self.r.readline()
                    break
                raw += await self.r.readexactly(n)
                await self.r.readline()
        else:
            raw = await self.r.readexactly(length)
        if close:
            self.w.close()
            self.w = None
        return status, json.loads(raw) if raw else None


class Gen:
    def __init__(self, a):
        self.a = a
        self.ctx = ssl.create_default_context(cafile=a.ca)
        self.recv = {}       # job id -> time a simulated agent had it
        self.sent = {}       # job id -> time its submit was sent
        self.polls = 0
        self.errors = []
        self.stop = False

    async def register(self, i, token):
        c = Conn(self.a.port, self.ctx)
        body = {"name": "sim-%05d" % i, "version": "0.1.0", "protocol": 1,
                "capacity": {"cpus": 2, "memory": 4 << 30, "disk": 10 << 30},
                "queue_depth": 1}
        st, b = await c.call("POST", "/api/v1/agents/register", token, body)
        if st != 201:
            raise RuntimeError("register: %s %s" % (st, b))
        return c, b["secret"]

    async def agent(self, c, secret):
        while not self.stop:
            try:
                st, b = await c.call("POST", "/api/v1/agents/lease", secret,
                                     {"wait": self.a.wait, "queue_room": 1,
                                      "running": []})
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                self.errors.append("lease: %r" % e)
                c.w = None
                await asyncio.sleep(1)
                continue
            self.polls += 1
            if st != 200:
                self.errors.append("lease %s %s" % (st, b))
                await asyncio.sleep(1)
                continue
            now = time.time()
            for j in b.get("jobs", []):
                self.recv[j["job"]] = now
                evs = [{"seq": 1, "time": now, "type": "started", "pid": 1},
                       {"seq": 2, "time": now, "type": "final",
                        "reason": "succeeded", "exit_code": 0}]
                await c.call("POST", "/api/v1/attempts/%s/%s/events"
                             % (j["job"], j["attempt"]), secret, {"events": evs})

    async def submitter(self):
        c = Conn(self.a.port, self.ctx)
        spec = {"name": "bench-load", "command": ["true"]}
        stop = time.monotonic() + (self.a.budget or 1e9)
        for _ in range(self.a.jobs):
            if time.monotonic() > stop:
                break  # the server is slower than the rate: say so, stop
            t0 = time.time()
            st, b = await c.call("POST", "/api/v1/jobs", self.a.admin, spec)
            if st != 201:
                raise RuntimeError("submit: %s %s" % (st, b))
            self.sent[b["id"]] = t0
            await asyncio.sleep(1.0 / self.a.rate)
        deadline = time.monotonic() + self.a.wait + 30
        while len(self.recv) < len(self.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def run(self):
        tok_conn = Conn(self.a.port, self.ctx)
        st, b = await tok_conn.call("POST", "/api/v1/tokens", self.a.admin,
                                    {"uses": self.a.agents, "ttl": 3600})
        token = b["token"]
        t0 = time.time()
        sem = asyncio.Semaphore(50)

        async def reg(i):
            async with sem:
                return await self.register(i, token)
        agents = await asyncio.gather(*(reg(i) for i in range(self.a.agents)))
        t_reg = time.time() - t0
        tasks = [asyncio.ensure_future(self.agent(c, s)) for c, s in agents]
        await asyncio.sleep(min(self.a.wait, 5))  # every agent is parked
        cpu0, w0, polls0 = cpu_self(), time.time(), self.polls
        await self.submitter()
        window = time.time() - w0
        cpu = cpu_self() - cpu0
        self.stop = True
        for t in tasks:
            t.cancel()
        lat = [(self.recv[j] - t) * 1000.0 for j, t in self.sent.items()
               if j in self.recv]
        return {"agents": self.a.agents, "register_s": t_reg,
                "dispatch_ms": lat, "submitted": len(self.sent),
                "dispatched": len(lat), "polls_in_window": self.polls - polls0,
                "window_s": window, "gen_cpu_s": cpu,
                "errors": self.errors[:20], "error_count": len(self.errors)}


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser()
    for k in ("port", "agents", "jobs", "wait"):
        p.add_argument("--" + k, type=int, required=True)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--budget", type=float, default=0.0,
                   help="stop submitting after this many seconds (0: never)")
    p.add_argument("--ca", required=True)
    p.add_argument("--admin", required=True)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    out = asyncio.run(Gen(a).run())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
