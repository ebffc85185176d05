"""Metric points at the workspace (docs/protocol.md "Metrics"): the test
plays the agent, posting events of type `metrics` in an attempt's events
batch, and reads them back with GET /api/v1/jobs/{id}/metrics."""
import json
import os
import sqlite3
import time

import pytest

from harness.common import wait_until
from harness.workspace import Workspace

SPEC = {"name": "train", "command": ["python3", "train.py"]}
COLS = ["start", "n", "step", "time", "value", "min", "max"]


def running_job(ws, node="node-1"):
    sec = ws.register(node)
    job = ws.submit(SPEC)
    ws.lease(sec)
    return sec, job


def mev(seq, points, **kw):
    ev = {"seq": seq, "time": 1790000000.0 + seq, "type": "metrics",
          "points": points, "dropped": 0}
    ev.update(kw)
    return ev


def pt(name, value, step=None, t=None):
    p = {"name": name, "value": value, "time": t or 1790000001.25}
    if step is not None:
        p["step"] = step
    return p


def metrics(ws, job, query="", token=None):
    st, _, b = ws.api("GET", f"/api/v1/jobs/{job}/metrics{query}", token=token)
    assert st == 200, b
    return b


def series(body, name, attempt=1):
    for s in body["series"]:
        if s["name"] == name and s["attempt"] == attempt:
            return s
    return None


def rows(s):
    return [dict(zip(COLS, r)) for r in s["points"]]


def test_points_are_stored_per_series_and_read_back(workspace):
    ws = workspace
    sec, job = running_job(ws)
    st, _, b = ws.events(sec, job, 1, [
        {"seq": 1, "time": 1.0, "type": "started"},
        mev(2, [pt("loss", 0.5, 0), pt("acc", 0.1, 0), pt("loss", 0.25, 1)]),
        mev(3, [pt("loss", 0.125, 2), pt("lr/group:0", 1e-3)])])
    assert st == 200 and b == {"acked": 3}
    body = metrics(ws, job)
    assert body["job"] == job and body["dropped"] == 0
    assert sorted(s["name"] for s in body["series"]) == ["acc", "loss", "lr/group:0"]
    loss = series(body, "loss")
    assert [(r["step"], r["value"], r["n"]) for r in rows(loss)] == \
        [(0, 0.5, 1), (1, 0.25, 1), (2, 0.125, 1)]
    assert loss["count"] == 3 and loss["width"] == 1
    assert loss["min"] == 0.125 and loss["max"] == 0.5
    assert loss["last"] == {"step": 2, "time": 1790000001.25, "value": 0.125}
    # a point without a step has step null (the x axis is its time)
    lr = rows(series(body, "lr/group:0"))
    assert lr == [{"start": 0, "n": 1, "step": None, "time": 1790000001.25,
                   "value": 1e-3, "min": 1e-3, "max": 1e-3}]
    # the name filter
    only = metrics(ws, job, "?name=acc")
    assert [s["name"] for s in only["series"]] == ["acc"]


def test_metrics_events_are_not_rows_of_the_events_table(workspace):
    ws = workspace
    sec, job = running_job(ws)
    pts = [pt("loss", float(i), i) for i in range(500)]
    st, _, b = ws.events(sec, job, 1, [{"seq": 1, "time": 1.0, "type": "started"},
                                       mev(2, pts, dropped=7)])
    assert st == 200 and b == {"acked": 2}
    # acknowledged (seq 2) though only the started event is a row
    st, _, b = ws.api("GET", f"/api/v1/jobs/{job}/events")
    assert st == 200
    assert [e["type"] for e in b["events"]] == ["started"]
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    assert db.execute("SELECT count(*) FROM events WHERE job = ?",
                      (job,)).fetchone()[0] == 1
    assert ws.job(job)["attempts"][0]["acked_seq"] == 2
    assert metrics(ws, job)["dropped"] == 7
    # a batch of metrics only is acknowledged too, and a retry of it
    assert ws.events(sec, job, 1, [mev(3, [pt("loss", 1.0, 500)])])[2] == {"acked": 3}
    assert ws.events(sec, job, 1, [mev(3, [pt("loss", 1.0, 500)])])[2] == {"acked": 3}
    assert series(metrics(ws, job), "loss")["count"] == 501


def test_retry_by_seq_is_applied_once(workspace):
    ws = workspace
    sec, job = running_job(ws)
    batch = [mev(1, [pt("loss", 1.0, 0), pt("loss", 2.0, 1)])]
    assert ws.events(sec, job, 1, batch)[0] == 200
    assert ws.events(sec, job, 1, batch)[0] == 200  # a retry
    # a batch overlapping the one before: seq 1 again and seq 2 new
    st, _, b = ws.events(sec, job, 1, batch + [mev(2, [pt("loss", 3.0, 2)])])
    assert st == 200 and b == {"acked": 2}
    loss = series(metrics(ws, job), "loss")
    assert loss["count"] == 3
    assert [r["value"] for r in rows(loss)] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("patch,field", [
    ({"points": "x"}, "events[0].points"),
    ({"points": [{"name": "loss"}]}, "events[0].points[0].value"),
    ({"points": [pt("loss", 1.0), pt("loss", "1")]}, "events[0].points[1].value"),
    ({"points": [pt("loss", 1.0), pt("loss", 1.0), pt("loss", True)]},
     "events[0].points[2].value"),
    ({"points": [pt("", 1.0)]}, "events[0].points[0].name"),
    ({"points": [pt("a b", 1.0)]}, "events[0].points[0].name"),
    ({"points": [pt("x" * 129, 1.0)]}, "events[0].points[0].name"),
    ({"points": [pt("loss\n", 1.0)]}, "events[0].points[0].name"),
    ({"points": [pt("loss", 1.0, -1)]}, "events[0].points[0].step"),
    ({"points": [pt("loss", 1.0, 1.5)]}, "events[0].points[0].step"),
    ({"points": [dict(pt("loss", 1.0), time="now")]}, "events[0].points[0].time"),
    ({"points": [dict(pt("loss", 1.0), color="red")]}, "events[0].points[0].color"),
    ({"points": [pt("loss", 1.0)] * 1001}, "events[0].points"),
    ({"dropped": -1}, "events[0].dropped"),
])
def test_bad_points_get_400_naming_the_field_and_nothing_is_stored(workspace, patch,
                                                                   field):
    ws = workspace
    sec, job = running_job(ws)
    ev = mev(1, [pt("loss", 1.0, 0)])
    ev.update(patch)
    st, _, b = ws.events(sec, job, 1, [{"seq": 1, "type": "started"},
                                       dict(ev, seq=2)])
    assert st == 400, b
    assert b["error"]["code"] == "invalid"
    assert b["error"]["field"] == field.replace("events[0]", "events[1]"), b
    assert metrics(ws, job)["series"] == []
    assert ws.api("GET", f"/api/v1/jobs/{job}/events")[2]["events"] == []


def test_a_value_json_cannot_hold_is_refused(workspace):
    ws = workspace
    sec, job = running_job(ws)
    body = ('{"events": [{"seq": 1, "type": "metrics", "points": '
            '[{"name": "loss", "value": 1e999}]}]}').encode()
    st, _, b = ws.api("POST", f"/api/v1/attempts/{job}/1/events", data=body,
                      token=sec, headers={"Content-Type": "application/json"})
    assert st == 400, b
    assert metrics(ws, job)["series"] == []


def test_past_the_cap_buckets_keep_min_max_and_last(workspace):
    ws = workspace
    sec, job = running_job(ws)
    # 10,000 points (the documented cap): every one kept
    vals = [((i * 7919) % 1000) / 10.0 for i in range(10002)]
    seq = 0
    for b0 in range(0, 10000, 1000):
        seq += 1
        pts = [pt("loss", vals[i], i) for i in range(b0, b0 + 1000)]
        assert ws.events(sec, job, 1, [mev(seq, pts)])[0] == 200
    loss = series(metrics(ws, job), "loss")
    assert loss["count"] == 10000 and loss["width"] == 1
    assert [r["value"] for r in rows(loss)] == vals[:10000]
    # one more: neighbouring rows merge, two points per bucket
    assert ws.events(sec, job, 1, [mev(seq + 1, [pt("loss", vals[10000], 10000)])])[0] == 200
    loss = series(metrics(ws, job), "loss")
    got = rows(loss)
    assert loss["count"] == 10001 and loss["width"] == 2 and len(got) == 5001
    for k, r in enumerate(got[:5000]):
        a, b = vals[2 * k], vals[2 * k + 1]
        assert r == {"start": 2 * k, "n": 2, "step": 2 * k + 1,
                     "time": 1790000001.25, "value": b, "min": min(a, b),
                     "max": max(a, b)}, k
    assert got[5000]["start"] == 10000 and got[5000]["n"] == 1
    # the next point joins the last bucket (it has room for two)
    assert ws.events(sec, job, 1, [mev(seq + 2, [pt("loss", vals[10001], 10001)])])[0] == 200
    got = rows(series(metrics(ws, job), "loss"))
    assert len(got) == 5001
    assert got[-1] == {"start": 10000, "n": 2, "step": 10001, "time": 1790000001.25,
                       "value": vals[10001], "min": min(vals[10000:10002]),
                       "max": max(vals[10000:10002])}
    assert series(metrics(ws, job), "loss")["min"] == min(vals)
    assert series(metrics(ws, job), "loss")["max"] == max(vals)


def test_since_gives_a_follower_only_the_new_rows(workspace):
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0), pt("acc", 0.5, 0)])])
    first = metrics(ws, job)
    cur = first["cursor"]
    assert cur > 0
    again = metrics(ws, job, f"?since={cur}")
    assert again["series"] == [] and again["cursor"] == cur
    ws.events(sec, job, 1, [mev(2, [pt("loss", 2.0, 1)])])
    new = metrics(ws, job, f"?since={cur}")
    assert new["cursor"] > cur
    assert [s["name"] for s in new["series"]] == ["loss"]
    assert [r["value"] for r in rows(new["series"][0])] == [2.0]
    assert new["series"][0]["count"] == 2


def test_a_follower_waits_for_new_points(workspace):
    import threading
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0)])])
    cur = metrics(ws, job)["cursor"]
    out = {}

    def follow():
        t0 = time.monotonic()
        out["body"] = metrics(ws, job, f"?since={cur}&wait=8")
        out["took"] = time.monotonic() - t0

    th = threading.Thread(target=follow)
    th.start()
    time.sleep(1.0)
    assert th.is_alive()  # parked: nothing new yet
    ws.events(sec, job, 1, [mev(2, [pt("loss", 2.0, 1)])])
    th.join(10)
    assert out["took"] < 6
    assert [r["value"] for r in rows(out["body"]["series"][0])] == [2.0]


def test_attempts_are_separate_series(workspace):
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0)])])
    # the agent hands the job back: attempt 2 starts elsewhere
    st, _, b = ws.api("POST", f"/api/v1/attempts/{job}/1/handback", token=sec)
    assert st == 200, b
    ws.lease(sec)
    ws.events(sec, job, 2, [mev(1, [pt("loss", 0.5, 1)])])
    body = metrics(ws, job)
    assert [(s["attempt"], s["count"]) for s in body["series"]] == [(1, 1), (2, 1)]
    only = metrics(ws, job, "?attempt=2")
    assert [s["attempt"] for s in only["series"]] == [2]


def test_a_superseded_attempt_cannot_add_points(workspace):
    ws = workspace
    sec, job = running_job(ws)
    st, _, b = ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0)])])
    ws.finish(sec, job, 1, seq=2)
    st, _, b = ws.events(sec, job, 1, [mev(3, [pt("loss", 2.0, 1)])])
    assert st == 409, b
    assert series(metrics(ws, job), "loss")["count"] == 1
    # a retry of the metrics it stored before it ended is acknowledged
    st, _, b = ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0)])])
    assert st == 200 and b == {"acked": 2}, b
    assert series(metrics(ws, job), "loss")["count"] == 1


def test_reads_need_admin_or_viewer_and_unknown_job_is_404(workspace):
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0)])])
    assert ws.api("GET", f"/api/v1/jobs/{job}/metrics", token="")[0] == 401
    assert ws.api("GET", f"/api/v1/jobs/{job}/metrics", token=sec)[0] == 401
    st, _, b = ws.api("POST", "/api/v1/viewer-tokens", json={"name": "v"})
    assert st == 201, b
    body = metrics(ws, job, token=b["token"])
    assert series(body, "loss")["count"] == 1
    assert ws.api("GET", "/api/v1/jobs/999/metrics")[0] == 404
    assert ws.api("GET", f"/api/v1/jobs/{job}/metrics?since=-1")[0] == 400
    assert ws.api("GET", f"/api/v1/jobs/{job}/metrics?name=" + "x" * 200)[0] == 400


def test_series_per_attempt_are_capped(workspace):
    ws = workspace
    sec, job = running_job(ws)
    # 1,000 series per attempt (the documented cap); more are dropped
    for k in range(2):
        pts = [pt(f"m{k}_{i}", 1.0) for i in range(600)]
        assert ws.events(sec, job, 1, [mev(k + 1, pts)])[0] == 200
    body = metrics(ws, job)
    assert len(body["series"]) == 1000 and body["dropped"] == 200


def test_metrics_survive_a_restart_and_go_with_log_retention():
    # log_retention="2s": the setting under test (the default is 30 days)
    ws = Workspace(log_retention="2s").start()
    try:
        sec, job = running_job(ws)
        ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0)])])
        cur = metrics(ws, job)["cursor"]
        ws.stop()
        ws.start()
        assert series(metrics(ws, job), "loss")["count"] == 1
        # the revision goes on after a restart: a follower misses nothing
        ws.events(sec, job, 1, [mev(2, [pt("loss", 2.0, 1)])])
        assert [r["value"] for r in rows(metrics(ws, job, f"?since={cur}")["series"][0])] \
            == [2.0]
        sec2, job2 = running_job(ws, "node-2")
        ws.events(sec2, job2, 1, [mev(1, [pt("loss", 1.0, 0)])])
        ws.finish(sec, job, 1, seq=3)
        wait_until(lambda: metrics(ws, job)["series"] == [], 15,
                   what="the ended job's metrics deleted")
        # the running job keeps its points
        assert series(metrics(ws, job2), "loss")["count"] == 1
        db = sqlite3.connect(os.path.join(ws.dir, "metrics.db"))
        assert db.execute("SELECT count(*) FROM applied WHERE job = ?",
                          (job,)).fetchone()[0] == 0
    finally:
        ws.stop()


def test_backup_copies_the_metrics(workspace):
    import subprocess
    from harness.common import binary, tmpdir
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0), pt("loss", 0.5, 1)])])
    target = os.path.join(tmpdir(), "backup")
    subprocess.run([binary("tether-workspace"), "backup", "--dir", ws.dir, target],
                   check=True, capture_output=True, timeout=60)
    copy = Workspace(directory=target).start()
    try:
        assert series(metrics(copy, job), "loss")["count"] == 2
    finally:
        copy.stop()


def test_a_reply_is_bounded_when_a_job_has_many_series(workspace):
    ws = workspace
    sec, job = running_job(ws)
    # 1,000 series of 250 points: 250,000 rows stored; a reply holds at most
    # 200,000 rows, so each series comes merged two points a row
    beat = time.monotonic()
    for p in range(250):
        pts = [pt(f"s{i}", p + (i % 7) * (p % 3), p) for i in range(1000)]
        assert ws.events(sec, job, 1, [mev(p + 1, pts)])[0] == 200
        if time.monotonic() - beat > 1:  # the agent's heartbeat keeps the lease
            ws.lease(sec, running=[(job, 1)])
            beat = time.monotonic()
    body = metrics(ws, job)
    assert len(body["series"]) == 1000
    assert sum(len(s["points"]) for s in body["series"]) <= 200000
    s5 = series(body, "s5")
    got = rows(s5)
    vals = [p + 5 * (p % 3) for p in range(250)]
    assert s5["count"] == 250 and len(got) == 125
    for k, r in enumerate(got):
        a, b = vals[2 * k], vals[2 * k + 1]
        assert (r["start"], r["n"], r["step"], r["value"], r["min"], r["max"]) == \
            (2 * k, 2, 2 * k + 1, b, min(a, b), max(a, b)), k
    # one series alone comes whole
    alone = rows(series(metrics(ws, job, "?name=s5"), "s5"))
    assert [r["value"] for r in alone] == vals and all(r["n"] == 1 for r in alone)


def test_dispatch_does_not_wait_for_the_metrics_store(workspace):
    import threading
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [pt("loss", 1.0, 0)])])
    # another process holds metrics.db's write lock (a slow disk would too)
    db = sqlite3.connect(os.path.join(ws.dir, "metrics.db"), timeout=0,
                         isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    out = {}
    th = threading.Thread(target=lambda: out.update(
        r=ws.events(sec, job, 1, [mev(2, [pt("loss", 0.5, 1)])])))
    th.start()
    time.sleep(0.5)
    assert th.is_alive()  # this agent's metrics wait for the store...
    # ...while jobs are submitted, handed out and report, and points are read
    t0 = time.monotonic()
    sec2 = ws.register("node-2")
    j2 = ws.submit(SPEC)
    assert [x["job"] for x in ws.lease(sec2)["jobs"]] == [j2]
    assert ws.events(sec2, j2, 1, [{"seq": 1, "type": "started"}])[0] == 200
    assert ws.finish(sec2, j2, 1, seq=2)[0] == 200
    assert series(metrics(ws, job), "loss")["count"] == 1
    took = time.monotonic() - t0
    assert th.is_alive()
    db.execute("COMMIT")
    db.close()
    th.join(10)
    assert out["r"][0] == 200 and out["r"][2] == {"acked": 2}
    assert series(metrics(ws, job), "loss")["count"] == 2
    assert took < 2.0, took
