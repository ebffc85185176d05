"""kill -9 of the server while clients submit jobs and append log bytes;
after a restart on the same directory every acknowledged job, byte and
event is there (the database commits before the reply)."""
import threading
import time

from harness.workspace import Workspace

SPEC = {"name": "crash", "command": ["true"]}


def test_kill9_during_submits_and_appends():
    ws = Workspace(lease_ttl="1h").start()
    sec = ws.register()
    log_job = ws.submit(SPEC)
    ws.lease(sec)
    acked_jobs, acked = [], {"len": 0, "seq": 0}
    src = bytes(i % 251 for i in range(400000))
    stop = threading.Event()

    def submitter():
        while not stop.is_set():
            try:
                st, _, b = ws.api("POST", "/api/v1/jobs", json=SPEC, timeout=5)
            except Exception:
                continue
            if st == 201:
                acked_jobs.append(b["id"])

    def appender():
        off = 0
        while not stop.is_set() and off < len(src):
            try:
                st, _, b = ws.append(sec, log_job, 1, off, src[off:off + 997])
            except Exception:
                continue
            if st == 200:
                off = b["length"]
                acked["len"] = max(acked["len"], off)

    def eventer():
        seq = 1
        while not stop.is_set():
            try:
                st, _, b = ws.events(sec, log_job, 1, [{"seq": seq, "type": "progress",
                                                        "value": seq}])
            except Exception:
                continue
            if st == 200:
                acked["seq"] = b["acked"]
                seq += 1

    threads = [threading.Thread(target=f) for f in (submitter, appender, eventer)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while (len(acked_jobs) < 20 or acked["len"] < 20000) and time.monotonic() < deadline:
        time.sleep(0.05)
    ws.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked_jobs) >= 5 and acked["len"] > 0, "clients made no progress"
    ws.start()
    ids = {j["id"] for j in ws.api("GET", "/api/v1/jobs?limit=10000")[2]["jobs"]}
    missing = [j for j in acked_jobs if j not in ids]
    assert not missing, f"acknowledged jobs lost: {missing}"
    st, h, body = ws.api("GET", f"/api/v1/jobs/{log_job}/log")
    assert len(body) >= acked["len"], "acknowledged log bytes lost"
    assert body == src[:len(body)], "log bytes corrupted"
    assert ws.job(log_job)["attempts"][0]["acked_seq"] >= acked["seq"]
    # the stream continues from the stored length
    st, _, b = ws.append(sec, log_job, 1, len(body), src[len(body):])
    assert st == 200 and b["length"] == len(src)
    assert ws.api("GET", f"/api/v1/jobs/{log_job}/log")[2] == src
    ws.stop()
