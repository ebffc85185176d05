#!/usr/bin/python3
"""Latency of the workspace's long-polls, measured against the real server
over TLS on loopback (the tests only bound these generously):

  dispatch: a job is submitted while an agent's lease poll is parked; time
            until the poll returns with it.
  cancel:   a running job is cancelled; time until the parked poll returns
            the cancel.
  log:      a reader is parked on GET .../log?wait; time from the append
            until the reader has the bytes.

Usage: TETHER_BUILD_DIR=build bench/workspace_latency.py [ROUNDS]
(bench/run.sh runs measure() as rows 0a-0c of its table.)"""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "bb"))
from harness.workspace import Workspace  # noqa: E402

SPEC = {"name": "bench", "command": ["true"]}


def parked(fn):
    """Run fn in a thread; return (thread, result dict with 't' = done time)."""
    res = {}

    def run():
        res["r"] = fn()
        res["t"] = time.monotonic()
    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.2)  # let the request park
    return th, res


def measure(ws, rounds):
    """{"dispatch", "cancel", "log"}: lists of seconds, one per round."""
    sec = ws.register(name="latency-probe", queue_depth=1000)
    out = {"dispatch": [], "cancel": [], "log": []}
    for _ in range(rounds):
        th, res = parked(lambda: ws.lease(sec, wait=30, queue_room=1))
        t0 = time.monotonic()
        job = ws.submit(SPEC)
        th.join()
        out["dispatch"].append(res["t"] - t0)

        th, res = parked(lambda: ws.lease(sec, wait=30, queue_room=0,
                                          running=[(job, 1)]))
        t0 = time.monotonic()
        ws.api("POST", f"/api/v1/jobs/{job}/cancel")
        th.join()
        out["cancel"].append(res["t"] - t0)

        th, res = parked(lambda: ws.api("GET", f"/api/v1/jobs/{job}/log?offset=0&wait=30"))
        t0 = time.monotonic()
        ws.append(sec, job, 1, 0, b"x\n")
        th.join()
        out["log"].append(res["t"] - t0)
        ws.finish(sec, job, 1, reason="cancelled")
    ws.api("DELETE", "/api/v1/agents/latency-probe")
    return out


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    ws = Workspace(lease_ttl="1h").start()
    out = measure(ws, rounds)
    ws.stop()
    for k, v in out.items():
        v = sorted(x * 1000 for x in v)
        print(f"{k:9s} n={len(v)} median={statistics.median(v):.1f} ms "
              f"p90={v[int(len(v) * 0.9) - 1]:.1f} ms max={v[-1]:.1f} ms "
              "(includes the client's own request time)")


if __name__ == "__main__":
    main()
