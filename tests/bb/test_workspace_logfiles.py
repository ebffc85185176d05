"""Logs out of SQLite (issue 22, docs/performance.md F5): each attempt's log
is an append-only file beside the database, logs/<job>/<attempt>, with only
its length in the database; a database from before the files keeps its
logs readable and moves them into the file at the next append; retention
deletes the files.  (The offset protocol itself: test_workspace_logs.py,
unchanged; kill -9 during appends: test_workspace_crash.py.)"""
import os
import sqlite3
import time

from harness.common import wait_until
from harness.workspace import Workspace

SPEC = {"name": "logfile", "command": ["true"]}


def log_file(ws, job, att=1):
    return os.path.join(ws.dir, "logs", str(job), str(att))


def chunks(ws):
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    try:
        return db.execute("SELECT count(*) FROM log_chunks").fetchone()[0]
    finally:
        db.close()


def test_log_bytes_go_to_a_file_not_the_database(workspace):
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    assert workspace.append(sec, j, 1, 0, b"hello ")[2] == {"length": 6}
    assert workspace.append(sec, j, 1, 3, b"lo world\n")[2] == {"length": 12}
    with open(log_file(workspace, j), "rb") as f:
        assert f.read() == b"hello world\n"
    assert chunks(workspace) == 0
    st, h, body = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=6")
    assert st == 200 and body == b"world\n" and h["Tether-Log-Length"] == "12"


def test_bytes_past_the_acknowledged_length_are_rewritten_in_place(workspace):
    # what a crash between the file write and the commit leaves behind:
    # bytes in the file past log_length, the agent's own from an append
    # never acknowledged (its log at an offset never changes); readers do
    # not see them, and the next append writes over them in place (no cut:
    # a reader may be sending them, docs/workspace.md)
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    assert workspace.append(sec, j, 1, 0, b"abc")[2] == {"length": 3}
    with open(log_file(workspace, j), "ab") as f:
        f.write(b"defgh")
    st, h, body = workspace.api("GET", f"/api/v1/jobs/{j}/log")
    assert body == b"abc" and h["Tether-Log-Length"] == "3"
    assert workspace.append(sec, j, 1, 3, b"def")[2] == {"length": 6}
    st, h, body = workspace.api("GET", f"/api/v1/jobs/{j}/log")
    assert body == b"abcdef" and h["Tether-Log-Length"] == "6"
    assert workspace.append(sec, j, 1, 6, b"ghij")[2] == {"length": 10}
    with open(log_file(workspace, j), "rb") as f:
        assert f.read() == b"abcdefghij"


def test_a_database_with_logs_in_log_chunks_keeps_them():
    ws = Workspace().start()
    try:
        sec = ws.register()
        j = ws.submit(SPEC)
        ws.lease(sec)
        ws.stop()
        # the log as an older workspace stored it: rows of log_chunks
        db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
        db.execute("INSERT INTO log_chunks VALUES (?, 1, 0, ?)", (j, b"old "))
        db.execute("INSERT INTO log_chunks VALUES (?, 1, 4, ?)", (j, b"bytes "))
        db.execute("UPDATE attempts SET log_length = 10 WHERE job = ?", (j,))
        db.commit()
        db.close()
        ws.start()
        st, h, body = ws.api("GET", f"/api/v1/jobs/{j}/log?offset=2")
        assert st == 200 and body == b"d bytes " and h["Tether-Log-Length"] == "10"
        assert not os.path.exists(log_file(ws, j))
        # the next append moves them into the file
        assert ws.append(sec, j, 1, 10, b"new\n")[2] == {"length": 14}
        with open(log_file(ws, j), "rb") as f:
            assert f.read() == b"old bytes new\n"
        assert chunks(ws) == 0
        assert ws.api("GET", f"/api/v1/jobs/{j}/log")[2] == b"old bytes new\n"
    finally:
        ws.stop()


def test_retention_deletes_the_log_files():
    # log_retention="1s": the setting under test (the default is 30 days)
    ws = Workspace(log_retention="1s").start()
    try:
        sec = ws.register()
        j = ws.submit(SPEC)
        ws.lease(sec)
        assert ws.append(sec, j, 1, 0, b"old log")[0] == 200
        assert os.path.exists(log_file(ws, j))
        ws.finish(sec, j, 1)
        wait_until(lambda: not os.path.exists(os.path.join(ws.dir, "logs", str(j))),
                   10, what="the job's log directory deleted")
        st, h, body = ws.api("GET", f"/api/v1/jobs/{j}/log")
        assert body == b"" and h["Tether-Log-Complete"] == "1"
    finally:
        ws.stop()


def _open_append(ws, secret, job, offset, total):
    """A log append over TLS whose headers promise `total` body bytes; the
    caller sends the body (or part of it) on the returned socket."""
    import socket
    import ssl
    ctx = ssl.create_default_context(cafile=ws.ca_file)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ws.port), timeout=30),
                        server_hostname="127.0.0.1")
    s.sendall(("POST /api/v1/attempts/%s/1/log?offset=%d HTTP/1.1\r\nHost: x\r\n"
               "Tether-Protocol: 1\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (job, offset, secret, total)).encode())
    return s


def _reply(s):
    import json
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    n = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
             if ln.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        body += s.recv(65536)
    return int(head.split(b" ")[1]), json.loads(body)


def test_an_append_streams_into_the_file_as_it_arrives(workspace):
    # the body is written to the attempt's file as it arrives, not buffered
    # whole first (issue 22), and readers see its bytes as they land (a
    # follower does not wait for the commit of an 8 MiB append: row 4b's
    # stalls); a second append to the same log while one is in flight is
    # told to retry (503 busy) instead of writing beside it
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    assert workspace.append(sec, j, 1, 0, b"head\n")[2] == {"length": 5}
    half = b"x" * (1 << 20)
    s = _open_append(workspace, sec, j, 5, 2 * len(half))
    try:
        s.sendall(half)
        wait_until(lambda: os.path.getsize(log_file(workspace, j)) >= 5 + len(half),
                   timeout=20, what="the first half in the log file")
        st, h, body = workspace.api("GET", f"/api/v1/jobs/{j}/log")
        assert st == 200 and body == b"head\n" + half
        assert h["Tether-Log-Length"] == str(5 + len(half))
        st, _, b = workspace.append(sec, j, 1, 5, b"y")
        assert st == 503 and b["error"]["code"] == "busy", (st, b)
        s.sendall(half)
        assert _reply(s) == (200, {"length": 5 + 2 * len(half)})
    finally:
        s.close()
    st, h, body = workspace.api("GET", f"/api/v1/jobs/{j}/log")
    assert body == b"head\n" + half + half
    # the next append goes on from there
    assert workspace.append(sec, j, 1, 5 + 2 * len(half), b"tail\n")[2] == {
        "length": 10 + 2 * len(half)}


def test_a_parked_reader_gets_an_appends_bytes_before_its_commit(workspace):
    # a follower parked at the end of the log is woken by bytes of an
    # append still arriving; when that append breaks off, the agent sends
    # the same bytes again and the reader goes on from where it was
    import threading
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    assert workspace.append(sec, j, 1, 0, b"head\n")[2] == {"length": 5}
    got = {}

    def follow():
        got["reply"] = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=5&wait=30",
                                     timeout=60)
        got["at"] = time.monotonic()

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.5)  # parked
    part = b"line one\nline two\n"
    s = _open_append(workspace, sec, j, 5, 1 << 20)
    try:
        sent = time.monotonic()
        s.sendall(part)
        t.join(20)
        assert not t.is_alive(), "the parked reader was not woken by the bytes"
        st, h, body = got["reply"]
        assert st == 200 and body == part, (st, body)
        assert h["Tether-Log-Length"] == str(5 + len(part))
        assert got["at"] - sent < 5
    finally:
        s.close()  # the append breaks off, never acknowledged
    wait_until(lambda: workspace.append(sec, j, 1, 5, part + b"three\n")[0] == 200,
               timeout=30, what="the agent's retry accepted")
    st, h, body = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset={5 + len(part)}")
    assert body == b"three\n" and h["Tether-Log-Length"] == str(5 + len(part) + 6)
    assert workspace.api("GET", f"/api/v1/jobs/{j}/log")[2] == b"head\n" + part + b"three\n"
