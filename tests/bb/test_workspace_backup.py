"""tether-workspace backup --dir D TARGET (issue 22): a copy of a serving
workspace (SQLite online backup, then the log files and blobs) that is
itself a workspace directory: restore = serve it.  Appends go on while the
backup runs; the copy's logs are a byte-exact prefix of what was sent."""
import os
import subprocess
import threading

from harness.common import binary, tmpdir
from harness.workspace import Workspace

SPEC = {"name": "backup", "command": ["true"]}


def test_backup_while_serving_and_restore():
    ws = Workspace().start()
    target = os.path.join(tmpdir(), "backup")
    stream = b"".join(b"line %06d\n" % i for i in range(3000))
    try:
        sec = ws.register()
        done = ws.submit(SPEC)
        ws.lease(sec)
        assert ws.append(sec, done, 1, 0, b"finished log\n")[0] == 200
        assert ws.finish(sec, done, 1)[0] == 200
        live = ws.submit(SPEC)
        assert [j["job"] for j in ws.lease(sec)["jobs"]] == [live]
        stop, started = threading.Event(), threading.Event()

        def appender():
            off = 0
            while off < len(stream) and not stop.is_set():
                st, _, b = ws.append(sec, live, 1, off, stream[off:off + 1100])
                assert st == 200, b
                off = b["length"]
                started.set()

        th = threading.Thread(target=appender)
        th.start()
        assert started.wait(10)
        r = subprocess.run([binary("tether-workspace"), "backup", "--dir", ws.dir,
                            target], capture_output=True, text=True, timeout=60)
        stop.set()
        th.join(30)
        assert r.returncode == 0, r.stderr
        assert "backed up" in r.stdout
    finally:
        ws.stop()
    for f in ("workspace.conf", "admin.token", "tls.crt", "tls.key", "workspace.db"):
        assert os.path.exists(os.path.join(target, f)), f
    # restore: serve the copy
    back = Workspace(directory=target).start()
    try:
        assert back.job(done)["state"] == "succeeded"
        st, h, body = back.api("GET", f"/api/v1/jobs/{done}/log")
        assert body == b"finished log\n" and h["Tether-Log-Complete"] == "1"
        st, h, body = back.api("GET", f"/api/v1/jobs/{live}/log")
        n = int(h["Tether-Log-Length"])
        assert st == 200 and n > 0 and body == stream[:n]
        # the copy goes on where its snapshot stopped
        st, _, b = back.append(sec, live, 1, n, stream[n:n + 10])
        assert st == 200 and b["length"] == n + 10, b
    finally:
        back.stop()


def test_backup_refuses_a_non_empty_target(workspace):
    target = tmpdir()
    with open(os.path.join(target, "x"), "w") as f:
        f.write("keep me")
    r = subprocess.run([binary("tether-workspace"), "backup", "--dir", workspace.dir,
                        target], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "not empty" in r.stderr
    assert os.listdir(target) == ["x"]
    r = subprocess.run([binary("tether-workspace"), "backup", "--dir", workspace.dir],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "TARGET" in r.stderr
