"""Every call of docs/protocol.md and its documented errors, against the
real server over TLS on loopback.  The test plays the agent with raw HTTP."""
import time

import pytest

from harness.common import wait_until
from harness.workspace import Workspace

SPEC = {"name": "digits", "command": ["python3", "train.py"]}


def err(body):
    return body["error"]["code"]


# --- authentication and versioning -------------------------------------
def test_admin_calls_need_the_admin_token(workspace):
    assert workspace.api("GET", "/api/v1/jobs", token="")[0] == 401
    st, _, b = workspace.api("GET", "/api/v1/jobs", token="tw_wrong")
    assert st == 401 and err(b) == "unauthorized" and b["error"]["message"]
    sec = workspace.register()
    assert workspace.api("GET", "/api/v1/jobs", token=sec)[0] == 401


def test_agent_calls_refuse_the_admin_token(workspace):
    st, _, b = workspace.api("POST", "/api/v1/agents/lease", json={"wait": 0})
    assert st == 401 and err(b) == "unauthorized"


def test_wrong_protocol_version_gets_426(workspace):
    st, _, b = workspace.api("GET", "/api/v1/jobs", headers={"Tether-Protocol": "2"})
    assert st == 426 and err(b) == "upgrade_required" and "1" in b["error"]["message"]
    tok = workspace.token()
    st, _, b = workspace.api("POST", "/api/v1/agents/register", token=tok,
                             json={"name": "n", "protocol": 7, "capacity": {"cpus": 1}},
                             headers={"Tether-Protocol": "1"})
    assert st == 426 and err(b) == "upgrade_required"


def test_unknown_path_and_method(workspace):
    st, _, b = workspace.api("GET", "/api/v1/nothing")
    assert st == 404 and err(b) == "not_found"
    assert workspace.api("GET", "/other")[0] == 404
    assert workspace.api("PUT", "/api/v1/jobs", json={})[0] == 405


# --- tokens --------------------------------------------------------------
def test_tokens_create_and_list(workspace):
    st, _, b = workspace.api("POST", "/api/v1/tokens",
                             json={"uses": 3, "ttl": 60, "labels": ["gpu"]})
    assert st == 201
    assert b["token"].startswith("tr_") and b["id"].startswith("t_")
    assert b["uses"] == 3 and b["labels"] == ["gpu"]
    assert abs(b["expires_at"] - (time.time() + 60)) < 10
    st, _, b2 = workspace.api("POST", "/api/v1/tokens")  # all defaults
    assert st == 201 and b2["uses"] == 1
    st, _, lst = workspace.api("GET", "/api/v1/tokens")
    assert st == 200
    ids = {t["id"]: t for t in lst["tokens"]}
    assert ids[b["id"]]["uses_left"] == 3 and ids[b["id"]]["labels"] == ["gpu"]
    assert "token" not in ids[b["id"]] and b["token"] not in str(lst)


@pytest.mark.parametrize("body,field", [
    ({"uses": 0}, "uses"), ({"uses": "2"}, "uses"), ({"ttl": -1}, "ttl"),
    ({"labels": "gpu"}, "labels"), ({"labels": ["a b"]}, "labels"),
    ({"color": 1}, "color")])
def test_tokens_create_rejects_bad_fields(workspace, body, field):
    st, _, b = workspace.api("POST", "/api/v1/tokens", json=body)
    assert st == 400 and err(b) == "invalid" and b["error"]["field"] == field


# --- register --------------------------------------------------------------
def reg_body(name="node-1", **kw):
    b = {"name": name, "labels": ["x"], "version": "0.1.0", "protocol": 1,
         "machine_id": "m-" + str(name), "transport": "https", "os": "Debian 12",
         "kernel": "6.1", "capacity": {"cpus": 2, "memory": 1 << 30, "disk": 1 << 30,
                                       "gpus": [{"index": 0, "model": "H200",
                                                 "memory": 1.4e11, "uuid": "GPU-1"}]},
         "facts": {"cgroup": "v1"}, "queue_depth": 3}
    b.update(kw)
    return b


def test_register_returns_secret_and_applies_token_labels(workspace):
    tok = workspace.token(labels=["gpu"])
    st, _, b = workspace.api("POST", "/api/v1/agents/register", json=reg_body(), token=tok)
    assert st == 201
    assert b["agent_id"].startswith("a_") and b["secret"].startswith("ta_")
    assert b["name"] == "node-1" and b["lease_ttl"] == 3.0 and b["poll"] == 2.0
    st, _, ags = workspace.api("GET", "/api/v1/agents")
    a = ags["agents"][0]
    assert a["name"] == "node-1" and sorted(a["labels"]) == ["gpu", "x"]
    assert a["state"] == "online" and a["capacity"]["cpus"] == 2
    assert a["capacity"]["gpus"][0]["model"] == "H200"
    assert a["os"] == "Debian 12" and a["version"] == "0.1.0"
    assert a["facts"] == {"cgroup": "v1"} and a["transport"] == "https"


def test_register_token_use_count_and_expiry(workspace):
    tok = workspace.token(uses=1)
    assert workspace.api("POST", "/api/v1/agents/register", json=reg_body("a"), token=tok)[0] == 201
    st, _, b = workspace.api("POST", "/api/v1/agents/register", json=reg_body("b"), token=tok)
    assert st == 401 and err(b) == "unauthorized"
    tok = workspace.token(ttl=1)
    time.sleep(1.2)
    st, _, b = workspace.api("POST", "/api/v1/agents/register", json=reg_body("c"), token=tok)
    assert st == 401
    st, _, b = workspace.api("POST", "/api/v1/agents/register", json=reg_body("d"), token="tr_nope")
    assert st == 401
    st, _, b = workspace.api("POST", "/api/v1/agents/register", json=reg_body("e"), token="")
    assert st == 401


def test_register_conflict_and_replace(workspace):
    tok = workspace.token(uses=5)
    st, _, old = workspace.api("POST", "/api/v1/agents/register", json=reg_body(), token=tok)
    assert st == 201
    st, _, b = workspace.api("POST", "/api/v1/agents/register", json=reg_body(), token=tok)
    assert st == 409 and err(b) == "conflict"
    # the same machine under another name also conflicts
    st, _, b = workspace.api("POST", "/api/v1/agents/register",
                             json=reg_body("other", machine_id="m-node-1"), token=tok)
    assert st == 409
    # replace: the old agent is revoked, its live attempts lost
    jid = workspace.submit(SPEC, retries=1)
    lease = workspace.lease(old["secret"])
    assert lease["jobs"][0]["job"] == jid
    st, _, new = workspace.api("POST", "/api/v1/agents/register",
                               json=reg_body(replace=True), token=tok)
    assert st == 201
    assert workspace.api("POST", "/api/v1/agents/lease", json={"wait": 0},
                         token=old["secret"])[0] == 401
    j = workspace.job(jid)
    assert j["attempts"][0]["state"] == "lost" and j["state"] == "queued"
    assert workspace.lease(new["secret"])["jobs"][0]["attempt"] == 2


@pytest.mark.parametrize("patch,field", [
    ({"name": ""}, "name"), ({"name": "a b"}, "name"), ({"name": "x" * 129}, "name"),
    ({"name": 5}, "name"), ({"labels": [1]}, "labels"), ({"labels": ["l"] * 65}, "labels"),
    ({"capacity": {"cpus": "2"}}, "capacity.cpus"),
    ({"capacity": {"cpus": 2, "ram": 1}}, "capacity.ram"),
    ({"capacity": {"gpus": [{"model": 5}]}}, "capacity.gpus[0].model"),
    ({"queue_depth": -1}, "queue_depth"), ({"replace": "yes"}, "replace"),
    ({"colour": "red"}, "colour"), ({"facts": [1]}, "facts")])
def test_register_rejects_bad_fields(workspace, patch, field):
    tok = workspace.token()
    st, _, b = workspace.api("POST", "/api/v1/agents/register",
                             json=reg_body(**patch), token=tok)
    assert st == 400 and err(b) == "invalid" and b["error"].get("field") == field, b
    # the token was not used up by the refused call
    assert workspace.api("POST", "/api/v1/agents/register", json=reg_body(), token=tok)[0] == 201


def test_register_requires_capacity(workspace):
    tok = workspace.token()
    body = reg_body()
    del body["capacity"]
    st, _, b = workspace.api("POST", "/api/v1/agents/register", json=body, token=tok)
    assert st == 400 and b["error"]["field"] == "capacity"


# --- agents: list, revoke, drain, rotate --------------------------------------
def test_revoke_makes_the_secret_fail_at_once(workspace):
    sec = workspace.register("n1")
    st, _, b = workspace.api("DELETE", "/api/v1/agents/n1")
    assert st == 200 and b["revoked"] == "n1"
    st, _, b = workspace.api("POST", "/api/v1/agents/lease", json={"wait": 0}, token=sec)
    assert st == 401 and err(b) == "unauthorized"
    st, _, ags = workspace.api("GET", "/api/v1/agents")
    assert ags["agents"][0]["state"] == "revoked"
    st, _, b = workspace.api("DELETE", "/api/v1/agents/nobody")
    assert st == 404 and err(b) == "not_found"


def test_revoke_by_id(workspace):
    workspace.register("n1")
    aid = workspace.api("GET", "/api/v1/agents")[2]["agents"][0]["id"]
    assert workspace.api("DELETE", f"/api/v1/agents/{aid}")[0] == 200


def test_drain_reaches_the_next_poll_and_stops_new_jobs(workspace):
    sec = workspace.register("n1")
    st, _, b = workspace.api("POST", "/api/v1/agents/n1/drain")
    assert st == 200 and b["draining"] == "n1"
    workspace.submit(SPEC)
    r = workspace.lease(sec)
    assert r["drain"] is True and r["jobs"] == []
    assert workspace.api("GET", "/api/v1/agents")[2]["agents"][0]["state"] == "draining"
    assert workspace.api("POST", "/api/v1/agents/ghost/drain")[0] == 404


def test_agent_lost_after_three_silent_poll_periods():
    ws = Workspace(poll="300ms").start()
    ws.register("n1")
    t0 = time.monotonic()
    wait_until(lambda: ws.api("GET", "/api/v1/agents")[2]["agents"][0]["state"] == "lost",
               10, what="agent lost")
    assert time.monotonic() - t0 >= 0.8  # not before 3 poll periods (0.9 s)
    ws.stop()


def test_rotate_old_secret_dies_on_first_use_of_new(workspace):
    old = workspace.register()
    st, _, b = workspace.api("POST", "/api/v1/agents/rotate", token=old)
    assert st == 200 and b["secret"].startswith("ta_") and b["secret"] != old
    new = b["secret"]
    assert workspace.lease(old)["jobs"] == []  # old still works
    assert workspace.lease(new)["jobs"] == []  # first use of the new one
    assert workspace.api("POST", "/api/v1/agents/lease", json={"wait": 0},
                         token=old)[0] == 401
    assert workspace.api("POST", "/api/v1/agents/rotate")[0] == 401  # admin token


# --- jobs -----------------------------------------------------------------
def test_submit_get_list(workspace):
    st, _, b = workspace.api("POST", "/api/v1/jobs", json=dict(SPEC, priority=5))
    assert st == 201 and b["state"] == "queued" and isinstance(b["id"], int)
    jid = b["id"]
    j = workspace.job(jid)
    assert j["name"] == "digits" and j["state"] == "queued" and j["priority"] == 5
    assert j["spec"]["command"] == ["python3", "train.py"] and j["attempts"] == []
    assert j["reason"] is None and j["submitted_at"] > 0
    jid2 = workspace.submit(SPEC, name="other")
    st, _, lst = workspace.api("GET", "/api/v1/jobs")
    assert [x["id"] for x in lst["jobs"]] == [jid2, jid]
    assert workspace.api("GET", "/api/v1/jobs?name=other")[2]["jobs"][0]["id"] == jid2
    assert workspace.api("GET", "/api/v1/jobs?limit=1")[2]["jobs"][0]["id"] == jid2
    assert workspace.api("GET", "/api/v1/jobs?state=running")[2]["jobs"] == []
    assert workspace.api("GET", "/api/v1/jobs?limit=x")[0] == 400
    st, _, b = workspace.api("GET", "/api/v1/jobs/999")
    assert st == 404 and err(b) == "not_found"
    assert workspace.api("GET", "/api/v1/jobs/abc")[0] == 404


def test_list_by_agent(workspace):
    sec = workspace.register("n1")
    jid = workspace.submit(SPEC)
    workspace.submit(SPEC)
    workspace.lease(sec, queue_room=1)
    lst = workspace.api("GET", "/api/v1/jobs?agent=n1")[2]["jobs"]
    assert [x["id"] for x in lst] == [jid] and lst[0]["agent"] == "n1"


def test_secrets_are_masked_but_reach_the_agent(workspace):
    jid = workspace.submit(SPEC, secrets={"HF_TOKEN": "hf_secret_value"})
    st, _, raw = workspace.api("GET", f"/api/v1/jobs/{jid}")
    assert raw["spec"]["secrets"] == {"HF_TOKEN": "***"}
    assert "hf_secret_value" not in str(workspace.api("GET", "/api/v1/jobs")[2])
    sec = workspace.register()
    spec = workspace.lease(sec)["jobs"][0]["spec"]
    assert spec["secrets"] == {"HF_TOKEN": "hf_secret_value"}


@pytest.mark.parametrize("patch,field", [
    ({"resources": {"cpus": "two"}}, "resources.cpus"),
    ({"colour": 1}, "colour"), ({"command": "ls"}, "command"),
    ({"name": 5}, "name"), ({"retries": -1}, "retries"),
    ({"launcher": "vm"}, "launcher")])
def test_submit_rejects_bad_specs_naming_the_field(workspace, patch, field):
    st, _, b = workspace.api("POST", "/api/v1/jobs", json=dict(SPEC, **patch))
    assert st == 400 and err(b) == "invalid"
    assert b["error"]["field"] == field and field in b["error"]["message"]
    assert workspace.api("GET", "/api/v1/jobs")[2]["jobs"] == []


def test_submit_missing_snapshot(workspace):
    st, _, b = workspace.api("POST", "/api/v1/jobs",
                             json=dict(SPEC, source={"snapshot": "0" * 64}))
    assert st == 400 and b["error"]["field"] == "source.snapshot"


def test_submit_refuses_a_node_path_source(workspace):
    st, _, b = workspace.api("POST", "/api/v1/jobs", json=dict(SPEC, source={"path": "/srv"}))
    assert st == 400 and b["error"]["field"] == "source.path"


def test_cancel_queued_running_and_terminal(workspace):
    jid = workspace.submit(SPEC)
    st, _, b = workspace.api("POST", f"/api/v1/jobs/{jid}/cancel")
    assert st == 200 and b == {"id": jid, "state": "cancelled"}
    st, _, b = workspace.api("POST", f"/api/v1/jobs/{jid}/cancel")
    assert st == 409 and err(b) == "conflict"
    assert workspace.api("POST", "/api/v1/jobs/777/cancel")[0] == 404
    sec = workspace.register()
    jid = workspace.submit(SPEC)
    workspace.lease(sec)
    st, _, b = workspace.api("POST", f"/api/v1/jobs/{jid}/cancel")
    assert b["state"] == "cancelling"
    r = workspace.lease(sec, running=[(jid, 1)])
    assert r["cancel"] == [{"job": jid, "attempt": 1, "reason": "cancelled"}]
    assert workspace.finish(sec, jid, 1, reason="cancelled")[0] == 200
    assert workspace.job(jid)["state"] == "cancelled"


# --- scheduling ---------------------------------------------------------------
def test_priority_then_fifo(workspace):
    sec = workspace.register()
    a = workspace.submit(SPEC, priority=0)
    b = workspace.submit(SPEC, priority=10)
    c = workspace.submit(SPEC, priority=0)
    got = [j["job"] for j in workspace.lease(sec, queue_room=3)["jobs"]]
    assert got == [b, a, c]


def test_queue_room_limits_new_jobs(workspace):
    sec = workspace.register()
    for _ in range(3):
        workspace.submit(SPEC)
    held = [(j["job"], j["attempt"])
            for j in workspace.lease(sec, queue_room=1)["jobs"]]
    assert len(held) == 1
    # A poll lists what the agent holds (an attempt it does not list is
    # offered again: the reply that handed it went nowhere).
    assert workspace.lease(sec, queue_room=0, running=held)["jobs"] == []
    assert len(workspace.lease(sec, queue_room=5, running=held)["jobs"]) == 2


def test_placement_labels_and_capacity(workspace):
    small = workspace.register("small", cpus=2, labels=["cpu"])
    big = workspace.register("big", cpus=64, gpus=2, labels=["gpu"])
    j_gpu = workspace.submit(SPEC, resources={"gpus": 1})
    j_big = workspace.submit(SPEC, resources={"cpus": 32})
    j_lab = workspace.submit(SPEC, placement={"labels": ["gpu"]})
    j_name = workspace.submit(SPEC, placement={"agent": "small"})
    assert [j["job"] for j in workspace.lease(small, queue_room=9)["jobs"]] == [j_name]
    assert sorted(j["job"] for j in workspace.lease(big, queue_room=9)["jobs"]) == \
        sorted([j_gpu, j_big, j_lab])


def test_unschedulable_reason(workspace):
    jid = workspace.submit(SPEC, resources={"cpus": 64})
    assert workspace.job(jid)["queue_reason"].startswith("unschedulable:")
    workspace.register("n1", cpus=2)
    qr = workspace.job(jid)["queue_reason"]
    assert qr.startswith("unschedulable:") and "cpus" in qr
    jid2 = workspace.submit(SPEC, placement={"labels": ["tpu"]})
    assert "labels" in workspace.job(jid2)["queue_reason"]
    jid3 = workspace.submit(SPEC)
    assert workspace.job(jid3)["queue_reason"] is None


# --- handback --------------------------------------------------------------------
def test_handback_requeues_without_using_a_retry(workspace):
    sec = workspace.register()
    jid = workspace.submit(SPEC, retries=0)
    workspace.lease(sec)
    st, _, b = workspace.api("POST", f"/api/v1/attempts/{jid}/1/handback", token=sec)
    assert st == 200 and b["state"] == "handed_back"
    j = workspace.job(jid)
    assert j["state"] == "queued" and j["attempts"][0]["state"] == "handed_back"
    assert workspace.lease(sec)["jobs"][0]["attempt"] == 2
    st, _, b = workspace.api("POST", f"/api/v1/attempts/{jid}/1/handback", token=sec)
    assert st == 409 and err(b) == "conflict"
    other = workspace.register("n2")
    assert workspace.api("POST", f"/api/v1/attempts/{jid}/2/handback", token=other)[0] == 404
