"""The checkpoint calls of docs/protocol.md against the real workspace,
the test playing the agents with raw HTTP: upload (sha256-checked, only a
whole body is recorded), the resume pointer on the requeued attempt,
download by the agent given it, progress in the status, `preempting`."""
import hashlib

from harness.life import snapshot

OCTET = {"Content-Type": "application/octet-stream"}


def put_checkpoint(ws, secret, job, att, body, sha=None):
    hdrs = dict(OCTET)
    hdrs["Tether-Sha256"] = sha or hashlib.sha256(body).hexdigest()
    return ws.api("PUT", f"/api/v1/attempts/{job}/{att}/checkpoint",
                  data=body, token=secret, headers=hdrs)


def test_checkpoint_upload_resume_pointer_and_download(workspace):
    ws = workspace
    a1 = ws.register(name="spot-1")
    job = ws.submit(name="train", command=["true"], retries=0)
    item = ws.lease(a1)["jobs"][0]
    assert item["job"] == job and item["checkpoint"] is None
    body = snapshot({"epoch-0003.pt": b"weights" * 1000})
    # A body that is not what the header says (a cut upload): refused, and
    # nothing is recorded.
    st, _, b = put_checkpoint(ws, a1, job, 1, body[:100],
                              sha=hashlib.sha256(body).hexdigest())
    assert st == 400 and b["error"]["field"] == "sha256", b
    st, _, b = put_checkpoint(ws, a1, job, 1, body, sha="xyz")
    assert st == 400 and b["error"]["field"] == "sha256", b
    assert ws.job(job)["checkpoint"] is None
    # Another agent's attempt: 404.
    a2 = ws.register(name="spot-2")
    assert put_checkpoint(ws, a2, job, 1, body)[0] == 404
    st, _, b = put_checkpoint(ws, a1, job, 1, body)
    assert st == 201 and b["size"] == len(body), b
    sha = hashlib.sha256(body).hexdigest()
    ws.events(a1, job, 1, [{"seq": 1, "type": "progress", "value": 3}])
    st, _, b = ws.finish(a1, job, 1, reason="preempted", seq=2, exit_code=None)
    assert st == 200, b
    j = ws.job(job)
    assert j["state"] == "queued"  # a preemption does not use up retries
    assert j["checkpoint"]["id"] == sha and j["checkpoint"]["attempt"] == 1
    att = j["attempts"][0]
    assert att["checkpoint"] == {"sha256": sha, "size": len(body)}
    assert att["progress"] == 3
    # Too late: the attempt ended.
    assert put_checkpoint(ws, a1, job, 1, body)[0] == 409
    # The agent under a preemption notice is given nothing.
    assert ws.lease(a1, preempting=True)["jobs"] == []
    assert ws.api("GET", f"/api/v1/snapshots/{sha}", token=a2)[0] == 404
    item = ws.lease(a2)["jobs"][0]
    assert item["attempt"] == 2
    assert item["checkpoint"]["id"] == sha
    assert item["checkpoint"]["size"] == len(body)
    st, h, data = ws.api("GET", f"/api/v1/snapshots/{sha}", token=a2)
    assert st == 200 and data == body and h["Tether-Sha256"] == sha


def test_lease_refuses_a_bad_preempting_field(workspace):
    a1 = workspace.register()
    st, _, b = workspace.api("POST", "/api/v1/agents/lease",
                             json={"wait": 0, "preempting": "yes"}, token=a1)
    assert st == 400 and b["error"]["field"] == "preempting", b


def test_checkpoints_go_with_output_retention():
    import os
    from harness.common import wait_until
    from harness.workspace import Workspace
    ws = Workspace(output_retention="1s").start()
    try:
        sec = ws.register()
        job = ws.submit(name="hangs", command=["true"])
        ws.lease(sec)
        body = snapshot({"s": b"state"})
        assert put_checkpoint(ws, sec, job, 1, body)[0] == 201
        blobs = os.path.join(ws.dir, "blobs")
        assert os.listdir(blobs) == [hashlib.sha256(body).hexdigest()]
        ws.finish(sec, job, 1, reason="hung", exit_code=None)
        assert ws.job(job)["checkpoint"] is not None
        wait_until(lambda: ws.job(job)["checkpoint"] is None, 10,
                   what="retention")
        wait_until(lambda: os.listdir(blobs) == [], 10, what="the blob")
    finally:
        ws.stop()
