#!/usr/bin/python3
"""Load generator for metric 8: N simulated agents, each on its own
keep-alive TLS connection, register and then hold the lease long-poll in a
loop (the poll is the heartbeat); a job handed to one is acknowledged
with a `started` and a `final` event at once.  Meanwhile one admin
connection submits jobs at a steady rate, and the dispatch latency of each
(submit sent -> a simulated agent has it) is recorded.

Output (stdout): one JSON object with the latencies (dispatch, and the
submit request itself), the counts and the generator's own CPU time, so the
caller can tell whether the generator was the bottleneck.  asyncio, one
thread per process; --procs P spreads the agents over P processes (the
10,000-agent mode: one Python process cannot hold 10,000 TLS polls and
keep up), the first of which also submits; the CPU reported is theirs
together.

Usage: loadgen.py --port P --ca CA --admin TOKEN --agents N --jobs M
                  --wait S --rate R [--budget S] [--procs P]"""
import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
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
        self.submit_ms = []
        self.children = []   # [process, ready event, end record]
        self.child = a.child >= 0  # a helper process: agents only

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
                if self.child:
                    sys.stdout.write("recv %d %.6f\n" % (j["job"], now))
                    sys.stdout.flush()
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
            self.submit_ms.append((time.time() - t0) * 1000.0)
            self.sent[b["id"]] = t0
            await asyncio.sleep(1.0 / self.a.rate)
        deadline = time.monotonic() + self.a.wait + 30
        while len(self.recv) < len(self.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def share(self):
        """The agent indexes this process registers."""
        n, p, i = self.a.agents, max(1, self.a.procs), max(0, self.a.child)
        return range(i * n // p, (i + 1) * n // p)

    async def spawn(self, i, token):
        argv = [sys.executable, os.path.abspath(__file__)] + [
            "--port", str(self.a.port), "--agents", str(self.a.agents),
            "--jobs", "0", "--wait", str(self.a.wait), "--ca", self.a.ca,
            "--admin", self.a.admin, "--procs", str(self.a.procs),
            "--child", str(i), "--token", token]
        pr = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ch = [pr, asyncio.Event(), None]
        self.children.append(ch)

        async def read():
            async for line in pr.stdout:
                w = line.decode().split(" ", 1)
                if w[0] == "ready\n":
                    ch[1].set()
                elif w[0] == "recv":
                    j, t = w[1].split()
                    self.recv.setdefault(int(j), float(t))
                elif w[0] == "end":
                    ch[2] = json.loads(w[1])
        ch.append(asyncio.ensure_future(read()))

    async def run(self):
        if self.child:
            return await self.run_child()
        tok_conn = Conn(self.a.port, self.ctx)
        st, b = await tok_conn.call("POST", "/api/v1/tokens", self.a.admin,
                                    {"uses": self.a.agents, "ttl": 3600})
        token = b["token"]
        t0 = time.time()
        for i in range(1, max(1, self.a.procs)):
            await self.spawn(i, token)
        agents = await self.register_share(token)
        for ch in self.children:
            await ch[1].wait()
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
        polls = self.polls - polls0
        for ch in self.children:
            ch[0].stdin.close()
            await ch[0].wait()
            await ch[3]
            if ch[2] is None:
                self.errors.append("a helper process ended without a report")
                continue
            cpu += ch[2]["cpu"]
            polls += ch[2]["polls"]
            self.errors += ch[2]["errors"]
        lat = [(self.recv[j] - t) * 1000.0 for j, t in self.sent.items()
               if j in self.recv]
        return {"agents": self.a.agents, "register_s": t_reg,
                "dispatch_ms": lat, "submit_ms": self.submit_ms,
                "submitted": len(self.sent),
                "dispatched": len(lat), "polls_in_window": polls,
                "window_s": window, "gen_cpu_s": cpu,
                "procs": max(1, self.a.procs),
                "errors": self.errors[:20], "error_count": len(self.errors)}

    async def register_share(self, token):
        sem = asyncio.Semaphore(50)

        async def reg(i):
            async with sem:
                return await self.register(i, token)
        return await asyncio.gather(*(reg(i) for i in self.share()))

    async def run_child(self):
        """A helper: register this share, say ready, poll until stdin
        closes, then report CPU (since ready), polls and errors."""
        agents = await self.register_share(self.a.token)
        cpu0, polls0 = cpu_self(), self.polls
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        tasks = [asyncio.ensure_future(self.agent(c, s)) for c, s in agents]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        self.stop = True
        for t in tasks:
            t.cancel()
        sys.stdout.write("end " + json.dumps(
            {"cpu": cpu_self() - cpu0, "polls": self.polls - polls0,
             "errors": self.errors[:20]}) + "\n")
        sys.stdout.flush()
        return None


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
    p.add_argument("--procs", type=int, default=1,
                   help="spread the agents over this many processes")
    p.add_argument("--child", type=int, default=-1, help=argparse.SUPPRESS)
    p.add_argument("--token", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    out = asyncio.run(Gen(a).run())
    if out is not None:
        json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
