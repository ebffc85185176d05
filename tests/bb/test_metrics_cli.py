"""`tether metrics JOB [-f] [--json]` against the real workspace; the test
plays the agent, posting metrics events (docs/protocol.md "Metrics")."""
import json
import os
import subprocess
import time

from harness.common import binary, tmpdir, wait_until

SPEC = {"name": "train", "command": ["python3", "train.py"]}


def env(ws):
    e = dict(os.environ)
    e.update(TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
             TETHER_CA=ws.ca_file, XDG_CONFIG_HOME=os.path.join(tmpdir(), "nocfg"))
    return e


def tether(ws, *args, check=0):
    r = subprocess.run([binary("tether"), *args], env=env(ws), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == check, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


def mev(seq, points):
    return {"seq": seq, "time": 1790000000.0, "type": "metrics", "points": points}


def running_job(ws):
    sec = ws.register()
    job = ws.submit(SPEC)
    ws.lease(sec)
    return sec, job


def test_table_has_last_min_max_count_and_a_sparkline(workspace):
    ws = workspace
    sec, job = running_job(ws)
    assert tether(ws, "metrics", str(job)) == "no metrics yet\n"
    loss = [1.0, 0.8, 0.5, 0.4, 0.3, 0.25]
    ws.events(sec, job, 1, [mev(1, [{"name": "loss", "value": v, "step": i}
                                    for i, v in enumerate(loss)]
                               + [{"name": "acc", "value": 0.5}])])
    out = tether(ws, "metrics", str(job)).splitlines()
    assert out[0].split() == ["SERIES", "ATTEMPT", "LAST", "STEP", "MIN", "MAX",
                              "COUNT", "CURVE"]
    assert out[1].split() == ["acc", "1", "0.5", "-", "0.5", "0.5", "1", "▄"]
    # falling from the highest block to the lowest, scaled between min and max
    assert out[2].split() == ["loss", "1", "0.25", "5", "0.25", "1", "6", "█▆▃▂▁▁"]
    # --json prints the workspace's reply
    body = json.loads(tether(ws, "--json", "metrics", str(job)))
    st, _, api = ws.api("GET", f"/api/v1/jobs/{job}/metrics")
    assert body == api
    only = tether(ws, "metrics", str(job), "--name", "acc").splitlines()
    assert [line.split()[0] for line in only] == ["SERIES", "acc"]
    tether(ws, "metrics", "999", check=5)
    tether(ws, "metrics", check=2)


def test_follow_prints_new_points_until_the_job_ends(workspace):
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [{"name": "loss", "value": 1.0, "step": 0}])])
    p = subprocess.Popen([binary("tether"), "--json", "metrics", str(job), "-f"],
                         env=env(ws), stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        assert first["series"][0]["count"] == 1
        time.sleep(0.5)
        ws.events(sec, job, 1, [mev(2, [{"name": "loss", "value": 0.5, "step": 1}])])
        second = json.loads(p.stdout.readline())
        # only the new row, not the whole series again
        assert [r[4] for r in second["series"][0]["points"]] == [0.5]
        assert second["cursor"] > first["cursor"]
        ws.finish(sec, job, 1, seq=3)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_follow_table_merges_the_new_rows(workspace):
    ws = workspace
    sec, job = running_job(ws)
    ws.events(sec, job, 1, [mev(1, [{"name": "loss", "value": 1.0, "step": 0}])])
    p = subprocess.Popen([binary("tether"), "metrics", str(job), "-f"],
                         env=env(ws), stdout=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline(), p.stdout.readline()]
        assert lines[1].split()[:7] == ["loss", "1", "1", "0", "1", "1", "1"]
        ws.events(sec, job, 1, [mev(2, [{"name": "loss", "value": 0.5, "step": 1}])])
        ws.finish(sec, job, 1, seq=3)
        rest = p.stdout.read()
        assert p.wait(30) == 0
        last = rest.strip().splitlines()[-1].split()
        # the table holds both points: count 2, min 0.5, curve high then low
        assert last == ["loss", "1", "0.5", "1", "0.5", "1", "2", "█▁"]
    finally:
        if p.poll() is None:
            p.kill()
