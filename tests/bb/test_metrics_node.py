"""Metric points from the job's output, on the node (issue 26, node side).

The runner parses TETHER_METRIC lines, JSON lines and a user regex from the
stream it already reads, and appends `metrics` events that the agent ships
like the other events (docs/metrics.md, docs/protocol.md "events").  These
tests read the points back from the workspace's stored events
(GET /api/v1/jobs/{id}/events) and compare them with what the job printed."""
import json
import os
import subprocess
import time

from harness.agent import Agent
from harness.common import wait_until
from harness.workspace import Workspace

PY = "/usr/bin/python3"


def metric_events(ws, job):
    st, _, b = ws.api("GET", f"/api/v1/jobs/{job}/events")
    assert st == 200, b
    return [ev for ev in b["events"] if ev["type"] == "metrics"]


def points(ws, job):
    """[(name, value, step or None)] of the job's metrics events, in seq
    order; asserts that no seq came twice and the wire format holds."""
    evs = metric_events(ws, job)
    seqs = [(ev["attempt"], ev["seq"]) for ev in evs]
    assert seqs == sorted(set(seqs)), seqs
    out = []
    for ev in evs:
        assert isinstance(ev["dropped"], int) and ev["dropped"] >= 0, ev
        assert len(ev["points"]) <= 1000
        for p in ev["points"]:
            assert set(p) <= {"name", "value", "step", "time"}, p
            assert isinstance(p["time"], float) and p["time"] > 1.7e9, p
            out.append((p["name"], p["value"], p.get("step")))
    return out


def run_job(ws, ag, script, timeout=60, **spec):
    job = ws.submit(name="metrics", command=[PY, "-c", script], **spec)
    ag.wait_job(job, "succeeded", timeout=timeout)
    return job


TETHER_METRIC_JOB = r"""
import sys
w = sys.stdout.write
w("TETHER_METRIC loss=0.5 accuracy=0.25 step=0\n")
w("epoch 1 done\n")
w("TETHER_METRIC step=1 loss=0.375 accuracy=1e-3\n")
w("TETHER_METRIC lr=0.001\n")                        # no step
w("TETHER_METRIC bad=abc ok=2 nan=nan inf=inf x=\n")  # only ok=2
w("TETHER_METRIC sp ace=1 train/loss:avg-1.x=7\n")     # "sp" skipped
w("TETHER_METRIC step=-1 loss=9\n")                    # bad step: dropped
w("TETHER_METRIC " + "n" * 129 + "=1 " + "m" * 128 + "=2\n")
w("TETHER_METRIC bad!name=3 q=4\r\n")
w(" TETHER_METRIC indented=1\n")                       # not a metric line
w("TETHER_METRICloss=1\n")
w("TETHER_METRIC last=5 step=7")                       # no newline: no point
"""


def test_tether_metric_lines(workspace, agent):
    """Pass: exactly the well-formed name=value pairs, in order, with their
    step, and the log holds the job's bytes unchanged."""
    job = run_job(workspace, agent, TETHER_METRIC_JOB)
    assert points(workspace, job) == [
        ("loss", 0.5, 0), ("accuracy", 0.25, 0),
        ("loss", 0.375, 1), ("accuracy", 0.001, 1),
        ("lr", 0.001, None),
        ("ok", 2.0, None),
        ("ace", 1.0, None), ("train/loss:avg-1.x", 7.0, None),
        ("m" * 128, 2.0, None),
        ("q", 4.0, None)]
    printed = subprocess.run([PY, "-c", TETHER_METRIC_JOB], check=True,
                             capture_output=True).stdout
    assert printed in agent.ws_log(job)  # the log is the job's bytes


REGEX_JSON_JOB = r"""
import json, sys
for i in range(3):
    print(f"epoch {i} loss {1.0 / (i + 1):.4f} acc {i * 0.25}")
    print(json.dumps({"step": i, "val_loss": i + 0.5, "tag": "x",
                      "ok": True, "nested": {"a": 1}}))
print("epoch x loss 1.0 acc 0")           # step group not a number: dropped
print("{not json} epoch 9 loss 2 acc 3")  # not JSON: the regex gets it
print(json.dumps([1, 2]))
print("TETHER_METRIC epoch=4 step=4")
"""


def test_regex_and_json_lines(workspace, agent):
    """metrics.regex (named groups, `step`) and metrics.json_lines (numeric
    top-level fields; booleans, strings and objects are not points)."""
    job = run_job(workspace, agent, REGEX_JSON_JOB, metrics={
        "regex": r"epoch (?P<step>\S+) loss (?P<loss>[0-9.e-]+) "
                 r"acc (?P<acc>[0-9.]+)",
        "json_lines": True})
    assert points(workspace, job) == [
        ("loss", 1.0, 0), ("acc", 0.0, 0), ("val_loss", 0.5, 0),
        ("loss", 0.5, 1), ("acc", 0.25, 1), ("val_loss", 1.5, 1),
        ("loss", 0.3333, 2), ("acc", 0.5, 2), ("val_loss", 2.5, 2),
        ("loss", 2.0, 9), ("acc", 3.0, 9),
        ("epoch", 4.0, 4)]


def test_submit_refuses_bad_metrics(workspace):
    """Each bad part of `metrics` is a 400 naming the field."""
    for metrics, field in [
            ({"regex": "(?P<loss>[0-9"}, "metrics.regex"),
            ({"regex": "loss ([0-9.]+)"}, "metrics.regex"),
            ({"regex": 5}, "metrics.regex"),
            ({"json_lines": "yes"}, "metrics.json_lines"),
            ({"tensorboard": "../tb"}, "metrics.tensorboard"),
            ({"tensorboard": "/tb"}, "metrics.tensorboard"),
            ({"colour": 1}, "metrics.colour")]:
        st, _, b = workspace.api("POST", "/api/v1/jobs", json={
            "name": "m", "command": ["true"], "metrics": metrics})
        assert st == 400, (metrics, b)
        assert field in json.dumps(b), (metrics, b)


HOSTILE_JOB = r"""
import sys, time
t0 = time.time()
line = "a" * 3000 + "!\n"
for i in range(300):
    sys.stdout.write(line)
sys.stdout.write("b" * (10 << 20) + "\n")    # a 10 MB line
sys.stdout.write("TETHER_METRIC after=1 step=1\n")
sys.stdout.flush()
print("took %.1f" % (time.time() - t0))
"""


def test_hostile_regex_and_10mb_line_do_not_stall(workspace, agent):
    """A catastrophic-backtracking regex runs into PCRE2's match limits on
    each line (and is turned off after 100 such lines); a 10 MB line is
    passed to the log whole and gives no point.  Pass: the job ends within
    seconds, the log is intact and the later TETHER_METRIC point arrives.
    Without the limits, one line of this regex takes longer than the
    test's timeout."""
    t0 = time.monotonic()
    job = run_job(workspace, agent, HOSTILE_JOB, timeout=60,
                  metrics={"regex": r"^(?P<x>(a|aa)+)$"})
    assert time.monotonic() - t0 < 45
    assert points(workspace, job) == [("after", 1.0, 1)]
    log = agent.ws_log(job)
    assert log.count(b"a" * 3000 + b"!\n") == 300
    assert b"\n" + b"b" * (10 << 20) + b"\n" in log
    assert b"[tether] metrics.regex hit PCRE2's match limits" in log


SECRET = "hunter2hunter2"
NUMSECRET = "31337"
SECRET_JOB = r"""
import os
print("TETHER_METRIC loss=0.5 step=1")
print("TETHER_METRIC hunter2hunter2=1")
print("TETHER_METRIC x_hunter2hunter2_y=2 fine=3")
print("TETHER_METRIC " + os.environ["TOK"] + "=4")
print("TETHER_METRIC n=31337")
print("TETHER_METRIC m=31337.0")
print('{"hunter2hunter2": 5, "ok": 6}')
print('{"n": 3.1337e4}')
print("epoch 2 loss 0.25 hunter2hunter2")
print("TETHER_METRIC loss=0.125 step=3")
"""


def test_secrets_never_in_metrics(workspace, agent):
    """A line holding a secret's value gives no point, nor does a point
    whose name or value shows one (here a JSON number that prints as the
    numeric secret).  Pass: the stored events never contain either secret;
    the other points arrive."""
    job = run_job(workspace, agent, SECRET_JOB,
                  secrets={"TOK": SECRET, "PIN": NUMSECRET},
                  metrics={"json_lines": True,
                           "regex": r"epoch (?P<step>\d+) loss (?P<loss>\S+)"})
    evs = metric_events(workspace, job)
    text = json.dumps(evs)
    assert SECRET not in text and NUMSECRET not in text
    assert points(workspace, job) == [("loss", 0.5, 1), ("loss", 0.125, 3)]


def printing_job(n, sleep):
    return (f"import time\n"
            f"for i in range({n}):\n"
            f"    print(f'TETHER_METRIC loss={{i / 8}} acc={{i}} step={{i}}', "
            f"flush=True)\n"
            f"    time.sleep({sleep})\n")


def test_points_survive_agent_kill9(workspace, agent):
    """The agent is killed -9 twice while the job prints points.  Pass:
    every point arrives once, in order."""
    n = 200
    job = workspace.submit(name="m", command=[PY, "-c", printing_job(n, 0.02)])
    agent.wait_job(job, "running", timeout=30)
    for _ in range(2):
        time.sleep(1.0)
        agent.kill9()
        time.sleep(0.5)
        agent.start()
    agent.wait_job(job, "succeeded", timeout=60)
    want = []
    for i in range(n):
        want += [("loss", i / 8, i), ("acc", float(i), i)]
    assert points(workspace, job) == want


LONG_NAMES_JOB = r"""
import time
name = "n" * 120
for b in range(12):
    for i in range(700):
        print(f"TETHER_METRIC {name}{i % 8}={b}.{i:03d}5 step={b * 700 + i}")
    time.sleep(0.15)
"""


def test_points_survive_workspace_outage():
    """The workspace is down while the job prints ~8400 points with long
    names (a backlog of several MB of events).  Pass: once it is back, the
    agent ships them in calls within the workspace's body limit and every
    point arrives once, in order."""
    ws = Workspace(lease_ttl="30s").start()
    try:
        ag = Agent(ws, backoff_min="200ms", backoff_max="1s").start()
        job = ws.submit(name="m", command=[PY, "-c", LONG_NAMES_JOB])
        ag.wait_job(job, "running", timeout=30)
        ws.kill9()  # at once: a stop would serve the calls in flight
        wait_until(lambda: os.path.exists(
            os.path.join(ag.attempt_dir(job), "result.json")), 60,
            what="the job to finish during the outage")
        ws.start()
        ag.wait_job(job, "succeeded", timeout=60)
        want = [("n" * 120 + str(i % 8), float(f"{b}.{i:03d}5"), b * 700 + i)
                for b in range(12) for i in range(700)]
        got = points(ws, job)
        assert len(got) == len(want)
        assert got == want
        assert sum(ev["dropped"] for ev in metric_events(ws, job)) == 0
        assert "too_large" not in ag.output()
    finally:
        ws.stop()


RATE_JOB = r"""
import sys
for i in range(30000):
    sys.stdout.write(f"TETHER_METRIC x={i}\n")
"""


def test_rate_cap_counts_dropped_points(workspace, agent):
    """30,000 points printed at once: at most 10,000 a second are kept, the
    rest are counted in `dropped`; kept + dropped = printed, and the kept
    points are the printed ones in order."""
    job = run_job(workspace, agent, RATE_JOB)
    evs = metric_events(workspace, job)
    kept = [p["value"] for ev in evs for p in ev["points"]]
    dropped = sum(ev["dropped"] for ev in evs)
    assert len(kept) + dropped == 30000
    assert dropped > 0
    assert kept == sorted(kept) and len(set(kept)) == len(kept)
    assert kept[:10000] == [float(i) for i in range(10000)]


def test_digits_prints_loss_and_accuracy_points(workspace, agent):
    """examples/digits: one loss and one accuracy point per epoch, step =
    the epoch, the values those of its `epoch N/M loss L accuracy A`
    lines."""
    from harness.life import digits_snapshot
    import re
    snap = digits_snapshot(workspace)
    job = workspace.submit(name="digits", command=[PY, "train.py"],
                           source={"snapshot": snap}, env={"EPOCHS": "3"})
    agent.wait_job(job, "succeeded", timeout=240)
    log = agent.ws_log(job).decode()
    want = []
    for ep, loss, acc in re.findall(
            r"^epoch (\d+)/3 loss (\S+) accuracy (\S+)", log, re.M):
        want += [("loss", float(loss), int(ep)),
                 ("accuracy", float(acc), int(ep))]
    got = points(workspace, job)
    assert len(want) == 6 and len(got) == 6
    for (n, v, s), (wn, wv, ws_) in zip(got, want):
        # the log line has 4 decimals, the point 6 digits
        assert n == wn and s == ws_ and abs(v - wv) <= 5.1e-5, (got, want)
