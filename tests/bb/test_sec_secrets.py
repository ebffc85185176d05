"""Secrets never reach a log (issue 13, item 14), agent + workspace end to
end, with the agent's log shipping in its smallest chunks (4 KiB).

Scenario: a job with 100 secrets prints every value raw on stdout and
stderr: whole; one byte per write with flushes and pauses between; placed
to straddle 4 KiB and 64 KiB boundaries; and three times back to back.
Pass criterion: no secret value appears in the log the workspace serves,
in the node's log file, in the agent's own log (at debug level) or in the
workspace server's log; the masks are there instead (the job really
printed them)."""
import os
import random

N = 100

JOB = r"""
import os, sys, time
vals = [os.environ["SECRET_%d" % i] for i in range(100)]
out = sys.stdout.buffer
def w(b, f=out):
    f.write(b); f.flush()
for v in vals:                      # whole, then repeated back to back
    w(b"whole " + v.encode() + b"\n")
    w(b"rep " + (v * 3).encode() + b"\n")
for v in vals[:20]:                 # one byte per write, with pauses
    for c in v.encode():
        w(bytes([c]))
        time.sleep(0.001)
    w(b"\n")
for v in vals[20:40]:               # on stderr
    w(b"err " + v.encode() + b"\n", sys.stderr.buffer)
pos = 0
for i, v in enumerate(vals[40:]):   # straddling 4 KiB / 64 KiB boundaries
    edge = (4096 if i % 2 else 65536) * (i + 1)
    pad = edge - pos - len(v) // 2
    if pad > 0:
        w(b"." * pad); pos += pad
    w(v.encode()); pos += len(v)
w(b"\nEND\n")
"""


def secret_values(seed=13):
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/+="
    return ["s%02d" % i + "".join(rnd.choice(alphabet) for _ in range(21))
            for i in range(N)]


def test_hundred_secrets_never_in_any_log(workspace, agent_factory):
    ag = agent_factory(log_chunk="4K").start()
    vals = secret_values()
    job = workspace.submit(name="secrets", command=["/usr/bin/python3", "-c", JOB],
                           secrets={f"SECRET_{i}": v for i, v in enumerate(vals)})
    ag.wait_job(job, "succeeded", timeout=120)
    log = ag.ws_log(job)
    with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
        node = f.read()
    assert b"\nEND\n" in log and log.count(b"whole ") == N, log[:2000]
    assert b"***" in log
    places = {"workspace log": log, "node log": node,
              "agent log": ag.output().encode(),
              "workspace server log": workspace.output().encode()}
    for where, data in places.items():
        leaked = [v for v in vals if v.encode() in data]
        assert leaked == [], (where, len(leaked), leaked[:3])
        # no long fragment either: half of a value is already a leak
        halves = [v for v in vals if v[3:15].encode() in data]
        assert halves == [], (where, len(halves), halves[:3])
