"""Metric points from the job's output, on the node (issue 26, node side).

The runner parses TETHER_METRIC lines, JSON lines and a user regex from the
stream it already reads, and appends `metrics` events that the agent ships
like the other events (docs/metrics.md, docs/protocol.md "events").  These
tests read the points back from the workspace (GET /api/v1/jobs/{id}/metrics:
per series, every point while a series holds fewer than 10,000) and compare
them, series by series, with what the job printed."""
import json
import os
import subprocess
import time

from harness.agent import Agent
from harness.common import wait_until
from harness.workspace import Workspace

PY = "/usr/bin/python3"


def metric_body(ws, job):
    """The job's GET /api/v1/jobs/{id}/metrics reply."""
    st, _, b = ws.api("GET", f"/api/v1/jobs/{job}/metrics")
    assert st == 200, b
    return b


def points(ws, job):
    """{name: [(value, step or None)]} of the job's series (attempts in
    order), each in the order printed; asserts that the workspace kept
    every point (no point came twice: the count is the rows') and the
    points' times are the runner's epoch seconds."""
    out = {}
    for ser in sorted(metric_body(ws, job)["series"],
                      key=lambda x: (x["name"], x["attempt"])):
        rows = ser["points"]
        assert ser["width"] == 1 and ser["count"] == len(rows), ser["count"]
        for start, n, step, t, value, lo, hi in rows:
            assert n == 1 and isinstance(t, float) and t > 1.7e9, rows
            out.setdefault(ser["name"], []).append((value, step))
    return out


def by_series(pts):
    """[(name, value, step)] in the order printed -> points()' form."""
    out = {}
    for name, value, step in pts:
        out.setdefault(name, []).append((value, step))
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
    assert points(workspace, job) == by_series([
        ("loss", 0.5, 0), ("accuracy", 0.25, 0),
        ("loss", 0.375, 1), ("accuracy", 0.001, 1),
        ("lr", 0.001, None),
        ("ok", 2.0, None),
        ("ace", 1.0, None), ("train/loss:avg-1.x", 7.0, None),
        ("m" * 128, 2.0, None),
        ("q", 4.0, None)])
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
    assert points(workspace, job) == by_series([
        ("loss", 1.0, 0), ("acc", 0.0, 0), ("val_loss", 0.5, 0),
        ("loss", 0.5, 1), ("acc", 0.25, 1), ("val_loss", 1.5, 1),
        ("loss", 0.3333, 2), ("acc", 0.5, 2), ("val_loss", 2.5, 2),
        ("loss", 2.0, 9), ("acc", 3.0, 9),
        ("epoch", 4.0, 4)])


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
    assert points(workspace, job) == by_series([("after", 1.0, 1)])
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
    text = json.dumps(metric_body(workspace, job))
    assert SECRET not in text and NUMSECRET not in text
    assert points(workspace, job) == by_series([("loss", 0.5, 1),
                                                ("loss", 0.125, 3)])


ALL_SOURCES = {"regex": r"epoch (?P<step>\d+) rx (?P<rx>\d+)",
               "json_lines": True, "tensorboard": "tb"}


def all_sources_job(n, sleep):
    """Each of n steps: a TETHER_METRIC line, a JSON line, a line for the
    regex and a TensorBoard record (TB_WRITER), then a pause."""
    return TB_WRITER + f"""
import json
out = os.environ["TETHER_OUTPUTS"]
os.makedirs(out + "/tb")
tb = open(out + "/tb/events.out.tfevents.1.node", "wb", buffering=0)
for i in range({n}):
    print(f"TETHER_METRIC loss={{i / 8}} step={{i}}", flush=True)
    print(json.dumps({{"step": i, "jl": i + 0.5}}), flush=True)
    print(f"epoch {{i}} rx {{i * 2}}", flush=True)
    tb.write(record(event(i, [simple("tbv", i / 4)])))
    time.sleep({sleep})
"""


def check_all_sources(ws, job, n):
    """Every source's points, each in order, once; nothing else."""
    got = points(ws, job)
    want = {"loss": [(i / 8, i) for i in range(n)],
            "jl": [(i + 0.5, i) for i in range(n)],
            "rx": [(float(2 * i), i) for i in range(n)],
            "tbv": [(i / 4, i) for i in range(n)]}  # exact in float32
    assert got == want


def test_points_survive_agent_kill9(workspace, agent):
    """The agent is killed -9 twice while the job prints (and writes to
    TensorBoard files) points of every source.  Pass: every point arrives
    once, each source's in order."""
    n = 150
    job = workspace.submit(name="m", command=[PY, "-c", all_sources_job(n, 0.03)],
                           metrics=ALL_SOURCES)
    agent.wait_job(job, "running", timeout=30)
    for _ in range(2):
        time.sleep(1.0)
        agent.kill9()
        time.sleep(0.5)
        agent.start()
    agent.wait_job(job, "succeeded", timeout=60)
    check_all_sources(workspace, job, n)


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
        assert sum(map(len, got.values())) == len(want)
        assert got == by_series(want)
        assert metric_body(ws, job)["dropped"] == 0
        assert "too_large" not in ag.output()
    finally:
        ws.stop()


def test_all_sources_survive_workspace_outage():
    """The workspace is away (killed) while the job prints points of every
    source.  Pass: once it is back, every point arrives once, each source's
    in order."""
    n = 100
    ws = Workspace(lease_ttl="30s").start()
    try:
        ag = Agent(ws, backoff_min="200ms", backoff_max="1s").start()
        job = ws.submit(name="m", command=[PY, "-c", all_sources_job(n, 0.02)],
                        metrics=ALL_SOURCES)
        ag.wait_job(job, "running", timeout=30)
        time.sleep(0.5)
        ws.kill9()
        wait_until(lambda: os.path.exists(
            os.path.join(ag.attempt_dir(job), "result.json")), 60,
            what="the job to finish during the outage")
        ws.start()
        ag.wait_job(job, "succeeded", timeout=60)
        check_all_sources(ws, job, n)
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
    body = metric_body(workspace, job)
    [x] = body["series"]
    dropped = body["dropped"]
    assert x["count"] + dropped == 30000
    assert dropped > 0
    # the workspace keeps 10,000 rows a series: past that, a row is a
    # bucket of consecutive points (its min the first, its max and value
    # the last); the first 10,000 kept are 0..9999
    kept = []
    for start, n, step, t, value, lo, hi in x["points"]:
        assert value == hi and hi - lo == n - 1, (start, n, lo, hi)
        kept += [lo + k for k in range(n)]
    assert len(kept) == x["count"]
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
    got, want = points(workspace, job), by_series(want)
    assert sorted(got) == sorted(want) == ["accuracy", "loss"]
    for name in want:
        assert len(got[name]) == len(want[name]) == 3
        for (v, s), (wv, ws_) in zip(got[name], want[name]):
            # the log line has 4 decimals, the point 6 digits
            assert s == ws_ and abs(v - wv) <= 5.1e-5, (got, want)


# A TensorBoard event file writer of the tests' own (Debian has no
# tensorboard package): records of u64 length, masked CRC-32C of the length,
# the Event protobuf, masked CRC-32C of the data; the Event encoded by hand
# (wall_time 1, step 2, file_version 3, summary 5; Summary.value 1;
# Value tag 1, simple_value 2, tensor 8, metadata 9; TensorProto dtype 1,
# tensor_shape 2, float_val 5).
TB_WRITER = r'''
import os, struct, sys, time

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t
_T = _crc_table()

def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

def masked(b):
    c = crc32c(b)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload

def simple(tag, v):
    return field(1, 2, tag.encode()) + field(2, 5, struct.pack("<f", v)) + \
        field(9, 2, field(1, 2, b"scalars"))   # metadata: skipped

def tensor(tag, v, dtype=1, dims=()):
    shape = b"".join(field(2, 2, field(1, 0, varint(d))) for d in dims)
    vals = struct.pack("<%df" % len(v), *v)
    t = field(1, 0, varint(dtype)) + field(2, 2, shape) + field(5, 2, vals)
    return field(1, 2, tag.encode()) + field(8, 2, t)

def event(step, values, wall=None):
    body = field(1, 1, struct.pack("<d", wall or time.time()))
    body += field(2, 0, varint(step))
    summ = b"".join(field(1, 2, v) for v in values)
    return body + field(5, 2, summ)

def record(data, bad_crc=False):
    hdr = struct.pack("<Q", len(data))
    crc = masked(data) ^ (1 if bad_crc else 0)
    return hdr + struct.pack("<I", masked(hdr)) + data + struct.pack("<I", crc)
'''

TB_JOB = TB_WRITER + r'''
out = os.environ["TETHER_OUTPUTS"]
os.makedirs(out + "/tb/train")
top = open(out + "/tb/events.out.tfevents.1.node", "wb", buffering=0)
sub = open(out + "/tb/train/events.out.tfevents.2.node", "wb", buffering=0)
top.write(record(field(3, 2, b"brain.Event:2")))      # file_version only
for step in range(5):
    r = record(event(step, [simple("loss", 1.0 / (step + 1)),
                            tensor("acc", [step / 8])]))
    top.write(r[:7])          # a torn record: the reader waits for the rest
    time.sleep(0.25)
    top.write(r[7:])
    sub.write(record(event(step, [simple("loss", step + 0.5)])))
    if step == 2:
        top.write(record(event(99, [simple("corrupt", 1.0)]), bad_crc=True))
        top.write(record(event(98, [simple("big", 1.0),
                                    tensor("pad", [0.0] * 300000)])))
        top.write(record(event(97, [tensor("histogram", [1.0, 2.0],
                                           dims=(2,))])))
# which process reads the files: pid 1's other child, as whom
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) not in (1, os.getpid()):
        st = open("/proc/%s/status" % p).read()
        ppid = [l.split()[1] for l in st.splitlines() if l.startswith("PPid:")]
        uid = [l.split()[1] for l in st.splitlines() if l.startswith("Uid:")]
        if ppid == ["1"]:
            print("READER uid=%s me=%d" % (uid[0], os.getuid()), flush=True)
time.sleep(0.1)
top.write(record(event(5, [simple("last", 7.0)])))   # after the last look?
'''


def test_tensorboard_event_files(workspace, agent):
    """metrics.tensorboard: scalars (simple_value and scalar float tensors)
    of the event files under the outputs, a subdirectory's prefixed
    ("train/loss"), read while the job runs by a reader in the job's
    sandbox as the job user; torn records are waited for, a record with a
    bad CRC, one over the record cap and a non-scalar tensor give nothing;
    the record written just before the job ends still arrives (the
    reader's last look)."""
    job = run_job(workspace, agent, TB_JOB, metrics={"tensorboard": "tb"})
    got = points(workspace, job)
    top = {n: [(round(v, 6), s) for v, s in p] for n, p in got.items()
           if not n.startswith("train/")}
    sub = {n: p for n, p in got.items() if n.startswith("train/")}
    want_top = []
    for s in range(5):
        want_top += [("loss", 1.0 / (s + 1), s), ("acc", s / 8, s)]
    want_top.append(("last", 7.0, 5))
    assert top == by_series([(n, round(v, 6), s) for n, v, s in want_top])
    assert sub == by_series([("train/loss", s + 0.5, s) for s in range(5)])
    log = agent.ws_log(job).decode()
    uid, me = [int(x.split("=")[1]) for x in
               log.split("READER ")[1].split("\n")[0].split()]
    assert uid == me and uid != 0, log


LIVE_JOB = r"""
import time
print("TETHER_METRIC a=1 step=1", flush=True)
time.sleep(0.5)
print("TETHER_METRIC a=2 step=2", flush=True)   # while the agent holds
time.sleep(20)
"""


def test_points_arrive_while_the_job_runs():
    """Points reach the workspace while the job still runs, within a few
    seconds of being printed, also the ones printed while the agent holds
    its tail of the events (once a second while metrics come) and nothing
    else happens in the attempt afterwards."""
    # A long heartbeat (and a lease to match), so that no periodic pass of
    # the agent picks the held event up by chance: the hold's own timer must.
    ws = Workspace(lease_ttl="120s").start()
    try:
        ag = Agent(ws, heartbeat_interval="30s").start()
        job = ws.submit(name="live", command=[PY, "-c", LIVE_JOB])
        ag.wait_job(job, "running", timeout=30)
        t0 = time.monotonic()
        wait_until(lambda: points(ws, job) == by_series([("a", 1.0, 1),
                                                         ("a", 2.0, 2)]),
                   6, what="both points at the workspace")
        assert time.monotonic() - t0 < 6
        assert ws.job(job)["state"] == "running"
        ws.api("POST", f"/api/v1/jobs/{job}/cancel")
        ag.wait_job(job, "cancelled", timeout=30)
    finally:
        ws.stop()
