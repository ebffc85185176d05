"""Outputs (upload with sha256 by the agent, list and download by the
admin) and source snapshots (upload by the admin/CLI, download by the
agent the job was leased to)."""
import hashlib
import io
import os
import tarfile

import pytest

SPEC = {"name": "files", "command": ["true"]}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def put(ws, sec, job, att, path, data, digest=None):
    return ws.api("PUT", f"/api/v1/attempts/{job}/{att}/outputs/{path}", data=data,
                  token=sec, headers={"Tether-Sha256": digest or sha(data),
                                      "Content-Type": "application/octet-stream"})


@pytest.fixture
def leased(workspace):
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    return workspace, sec, j


def test_outputs_upload_list_download(leased):
    ws, sec, j = leased
    data = os.urandom(200000)
    st, _, b = put(ws, sec, j, 1, "models/model.pt", data)
    assert st == 201 and b == {"path": "models/model.pt", "size": 200000, "sha256": sha(data)}
    assert put(ws, sec, j, 1, "models/model.pt", data)[0] == 201  # again: no-op
    assert put(ws, sec, j, 1, "empty", b"")[0] == 201
    st, _, b = ws.api("GET", f"/api/v1/jobs/{j}/outputs")
    assert st == 200 and b["attempt"] == 1
    assert b["outputs"] == [{"path": "empty", "size": 0, "sha256": sha(b"")},
                            {"path": "models/model.pt", "size": 200000, "sha256": sha(data)}]
    st, h, body = ws.api("GET", f"/api/v1/jobs/{j}/outputs/models/model.pt")
    assert st == 200 and body == data and h["Tether-Sha256"] == sha(data)
    st, h, body = ws.api("GET", f"/api/v1/jobs/{j}/outputs/empty?attempt=1")
    assert st == 200 and body == b""
    st, _, b = ws.api("GET", f"/api/v1/jobs/{j}/outputs/nope")
    assert st == 404 and b["error"]["code"] == "not_found"
    assert ws.api("GET", "/api/v1/jobs/999/outputs")[0] == 404
    assert ws.api("GET", f"/api/v1/jobs/{j}/outputs", token=sec)[0] == 401


def test_output_sha_mismatch_stores_nothing(leased):
    ws, sec, j = leased
    st, _, b = put(ws, sec, j, 1, "a.bin", b"abc", digest=sha(b"abd"))
    assert st == 400 and b["error"]["field"] == "sha256"
    st, _, b = put(ws, sec, j, 1, "a.bin", b"abc", digest="XYZ")
    assert st == 400 and b["error"]["field"] == "sha256"
    st, _, b = ws.api("PUT", f"/api/v1/attempts/{j}/1/outputs/a.bin", data=b"abc", token=sec)
    assert st == 400 and b["error"]["field"] == "sha256"
    assert ws.api("GET", f"/api/v1/jobs/{j}/outputs")[2]["outputs"] == []
    assert os.listdir(os.path.join(ws.dir, "blobs")) == []


@pytest.mark.parametrize("path", [
    "../escape", "a/../../b", "%2e%2e/x", "a//b", "./a", "a/./b", "/abs",
    "a/", "x" * 1100, "a%00b", "a%0ab", "dir/..", ".."])
def test_output_path_tricks_refused(leased, path):
    ws, sec, j = leased
    st, _, b = put(ws, sec, j, 1, path, b"data")
    assert st in (400, 404), (path, st, b)
    if st == 400:
        assert b["error"]["field"] == "path"
    assert ws.api("GET", f"/api/v1/jobs/{j}/outputs")[2]["outputs"] == []
    assert ws.alive()


def test_output_for_an_attempt_not_given_is_404(leased):
    ws, sec, j = leased
    assert put(ws, sec, j, 2, "a", b"x")[0] == 404
    other = ws.register("n2")
    assert put(ws, other, j, 1, "a", b"x")[0] == 404


def test_output_after_final_is_409(leased):
    ws, sec, j = leased
    ws.finish(sec, j, 1)
    st, _, b = put(ws, sec, j, 1, "late", b"x")
    assert st == 409 and b["error"]["code"] == "conflict"


def make_tgz():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_snapshot_upload_submit_and_agent_download(workspace):
    tgz = make_tgz()
    st, _, b = workspace.api("POST", "/api/v1/snapshots", data=tgz,
                             headers={"Content-Type": "application/octet-stream"})
    assert st == 201 and b == {"id": sha(tgz), "size": len(tgz)}
    assert workspace.api("POST", "/api/v1/snapshots", data=tgz)[2]["id"] == sha(tgz)
    sid = b["id"]
    st, h, body = workspace.api("GET", f"/api/v1/snapshots/{sid}")
    assert st == 200 and body == tgz and h["Tether-Sha256"] == sid
    j = workspace.submit(SPEC, source={"snapshot": sid})
    sec = workspace.register("n1")
    other = workspace.register("n2")
    # not leased to anyone yet: agents cannot read it
    assert workspace.api("GET", f"/api/v1/snapshots/{sid}", token=sec)[0] == 404
    got = workspace.lease(sec)["jobs"][0]
    assert got["job"] == j and got["snapshot"] == sid
    st, _, body = workspace.api("GET", f"/api/v1/snapshots/{sid}", token=sec)
    assert st == 200 and body == tgz
    assert workspace.api("GET", f"/api/v1/snapshots/{sid}", token=other)[0] == 404
    assert workspace.api("GET", "/api/v1/snapshots/" + "0" * 64)[0] == 404
    assert workspace.api("GET", "/api/v1/snapshots/../../etc/passwd")[0] == 404
    assert workspace.api("POST", "/api/v1/snapshots", data=tgz, token=sec)[0] == 401


def test_snapshot_limit():
    from harness.workspace import Workspace
    ws = Workspace(max_snapshot="100K").start()
    st, _, b = ws.api("POST", "/api/v1/snapshots", data=os.urandom(100 * 1024 + 1))
    assert st == 413 and b["error"]["code"] == "too_large"
    assert os.listdir(os.path.join(ws.dir, "blobs")) == []
    ws.stop()


def test_retention_deletes_old_logs_outputs_and_unused_snapshots():
    from harness.common import wait_until
    from harness.workspace import Workspace
    ws = Workspace(log_retention="1s", output_retention="1s").start()
    sec = ws.register()
    tgz = make_tgz()
    sid = ws.api("POST", "/api/v1/snapshots", data=tgz)[2]["id"]
    live = ws.submit(SPEC, source={"snapshot": sid}, placement={"agent": "elsewhere"})
    j = ws.submit(SPEC)
    ws.lease(sec)
    ws.append(sec, j, 1, 0, b"old log")
    assert put(ws, sec, j, 1, "m.bin", b"old output")[0] == 201
    ws.finish(sec, j, 1)
    wait_until(lambda: ws.api("GET", f"/api/v1/jobs/{j}/outputs")[2]["outputs"] == [], 10)
    st, h, body = ws.api("GET", f"/api/v1/jobs/{j}/log")
    assert body == b"" and h["Tether-Log-Complete"] == "1"
    blobs = os.listdir(os.path.join(ws.dir, "blobs"))
    assert blobs == [sid]  # the output's blob went; the live job's snapshot stays
    assert ws.api("GET", f"/api/v1/snapshots/{sid}")[0] == 200
    ws.api("POST", f"/api/v1/jobs/{live}/cancel")
    wait_until(lambda: os.listdir(os.path.join(ws.dir, "blobs")) == [], 10)
    ws.stop()


def test_output_limit():
    from harness.workspace import Workspace
    ws = Workspace(max_output="64K").start()
    sec = ws.register()
    j = ws.submit(SPEC)
    ws.lease(sec)
    data = os.urandom(64 * 1024 + 1)
    st, _, b = put(ws, sec, j, 1, "big.bin", data)
    assert st == 413 and b["error"]["code"] == "too_large"
    assert ws.api("GET", f"/api/v1/jobs/{j}/outputs")[2]["outputs"] == []
    assert os.listdir(os.path.join(ws.dir, "blobs")) == []
    assert put(ws, sec, j, 1, "ok.bin", data[:1000])[0] == 201
    ws.stop()
