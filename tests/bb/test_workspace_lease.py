"""Leases and attempts: renewal, expiry -> lost -> requeue as attempt n+1,
fencing (409 for the old attempt's events and outputs, its log bytes still
accepted), retries, and the long-poll command channel waking on submit
and cancel."""
import hashlib
import signal
import threading
import time

from harness.common import wait_until
from harness.workspace import Workspace

SPEC = {"name": "lease", "command": ["true"]}


def fast_ws(**kw):
    # lease 1s, declared lost after 1 + 0.5 + 0.25 s
    s = {"lease_ttl": "1s", "lost_grace": "500ms", "lost_margin": "250ms"}
    s.update(kw)
    return Workspace(**s).start()


def test_poll_renews_the_lease():
    ws = fast_ws()
    sec = ws.register()
    j = ws.submit(SPEC)
    ws.lease(sec)
    for _ in range(6):  # 3 s of renewals, well past ttl + grace + margin
        r = ws.lease(sec, running=[(j, 1)])
        assert r["renewed"] == [{"job": j, "attempt": 1, "lease_ttl": 1.0}]
        time.sleep(0.5)
    job = ws.job(j)
    assert job["state"] == "running" and job["attempts"][0]["state"] == "running"
    ws.stop()


def test_expiry_requeues_and_fences_the_old_attempt():
    ws = fast_ws()
    old = ws.register("old")
    j = ws.submit(SPEC, retries=2)
    ws.lease(old)
    t0 = time.monotonic()
    wait_until(lambda: ws.job(j)["state"] == "queued", 10, what="requeue")
    assert time.monotonic() - t0 >= 1.5  # never before ttl + grace + margin
    job = ws.job(j)
    assert job["attempts"][0]["state"] == "lost" and job["attempts"][0]["reason"] == "lost"
    new = ws.register("new")
    got = ws.lease(new)["jobs"]
    assert got[0]["job"] == j and got[0]["attempt"] == 2
    # the stale agent: events and outputs 409, log bytes still accepted
    st, _, b = ws.finish(old, j, 1)
    assert st == 409 and b["error"]["code"] == "conflict"
    data = b"stale"
    st, _, b = ws.api("PUT", f"/api/v1/attempts/{j}/1/outputs/m.pt", data=data, token=old,
                      headers={"Tether-Sha256": hashlib.sha256(data).hexdigest()})
    assert st == 409
    assert ws.append(old, j, 1, 0, b"late bytes")[2] == {"length": 10}
    # the stale agent's poll tells it to stop the attempt
    r = ws.lease(old, running=[(j, 1)])
    assert r["lost"] == [{"job": j, "attempt": 1}] and r["renewed"] == []
    # the new attempt is unaffected
    assert ws.finish(new, j, 2)[0] == 200
    job = ws.job(j)
    assert job["state"] == "succeeded" and job["attempt"] == 2
    ws.stop()


def test_retries_exhausted_ends_lost():
    ws = fast_ws()
    sec = ws.register()
    j = ws.submit(SPEC, retries=1)
    ws.lease(sec)
    wait_until(lambda: ws.job(j)["state"] == "queued", 10)
    assert ws.lease(sec)["jobs"][0]["attempt"] == 2
    wait_until(lambda: ws.job(j)["state"] == "lost", 10)
    job = ws.job(j)
    assert job["reason"] == "lost" and len(job["attempts"]) == 2
    ws.stop()


def test_final_lost_event_requeues_with_retries_left(workspace):
    sec = workspace.register()
    j = workspace.submit(SPEC, retries=1)
    workspace.lease(sec)
    assert workspace.finish(sec, j, 1, reason="preempted")[0] == 200
    assert workspace.job(j)["state"] == "queued"


def test_cancel_during_lapse_ends_cancelled():
    ws = fast_ws()
    sec = ws.register()
    j = ws.submit(SPEC, retries=3)
    ws.lease(sec)
    ws.api("POST", f"/api/v1/jobs/{j}/cancel")
    wait_until(lambda: ws.job(j)["state"] == "cancelled", 10)
    ws.stop()


def test_events_idempotent_by_seq_and_final_fields(workspace):
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    evs = [{"seq": 1, "time": 1.0, "type": "phase", "phase": "source", "state": "start"},
           {"seq": 2, "time": 1.1, "type": "phase", "phase": "source", "state": "end",
            "duration": 0.1, "commit": "0123abcd"},
           {"seq": 3, "time": 1.2, "type": "started", "pid": 42}]
    st, _, b = workspace.events(sec, j, 1, evs)
    assert st == 200 and b == {"acked": 3}
    assert workspace.job(j)["state"] == "running"
    st, _, b = workspace.events(sec, j, 1, evs[1:])  # a retry
    assert b == {"acked": 3}
    final = {"seq": 4, "time": 2.0, "type": "final", "reason": "failed", "exit_code": 3,
             "signal": None, "peak_memory_bytes": 1234, "cpu_seconds": 1.5,
             "durations": {"source": 0.1, "env": 0.0, "run": 0.5, "outputs": 0.0},
             "message": "exit 3"}
    st, _, b = workspace.events(sec, j, 1, [final])
    assert b == {"acked": 4}
    # the final event retried after the attempt ended is still acked
    st, _, b = workspace.events(sec, j, 1, [final])
    assert st == 200 and b == {"acked": 4}
    job = workspace.job(j)
    a = job["attempts"][0]
    assert job["state"] == "failed" and job["reason"] == "failed"
    assert a["exit_code"] == 3 and a["peak_memory_bytes"] == 1234
    assert a["cpu_seconds"] == 1.5 and a["durations"]["run"] == 0.5
    assert a["durations"]["queued"] >= 0 and a["durations"]["source"] == 0.1
    assert a["commit"] == "0123abcd" and a["message"] == "exit 3"
    # a new event for the ended attempt is refused
    st, _, b = workspace.events(sec, j, 1, [dict(final, seq=5)])
    assert st == 409


def test_events_errors(workspace):
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    for body, field in [({"events": [{"type": "phase"}]}, "events[0].seq"),
                        ({"events": [{"seq": 1}]}, "events[0].type"),
                        ({"events": [{"seq": 1, "type": "final"}]}, "events[0].reason"),
                        ({"events": "x"}, "events"), ({"evts": []}, "evts")]:
        st, _, b = workspace.api("POST", f"/api/v1/attempts/{j}/1/events", json=body,
                                 token=sec)
        assert st == 400 and b["error"]["field"] == field, (body, b)
    assert workspace.events(sec, j, 9, [{"seq": 1, "type": "progress"}])[0] == 404
    other = workspace.register("n2")
    assert workspace.events(other, j, 1, [{"seq": 1, "type": "progress"}])[0] == 404


def timed(fn):
    res = {}

    def run():
        t = time.monotonic()
        res["r"] = fn()
        res["t"] = time.monotonic() - t
    th = threading.Thread(target=run)
    th.start()
    return th, res


def test_long_poll_wakes_on_submit(workspace):
    sec = workspace.register()
    th, res = timed(lambda: workspace.lease(sec, wait=20))
    time.sleep(0.5)
    assert th.is_alive()
    j = workspace.submit(SPEC)
    th.join(15)
    assert res["r"]["jobs"][0]["job"] == j
    assert res["t"] < 0.5 + 3  # generous; the real number is in bench/


def test_long_poll_wakes_on_cancel(workspace):
    sec = workspace.register()
    j = workspace.submit(SPEC)
    workspace.lease(sec)
    th, res = timed(lambda: workspace.lease(sec, wait=20, running=[(j, 1)]))
    time.sleep(0.5)
    assert th.is_alive()
    workspace.api("POST", f"/api/v1/jobs/{j}/cancel")
    th.join(15)
    assert res["r"]["cancel"] == [{"job": j, "attempt": 1, "reason": "cancelled"}]
    assert res["t"] < 0.5 + 3


def test_long_poll_wakes_when_a_final_event_requeues(workspace):
    # events wake only the sending agent's polls, unless they put the job
    # back in the queue: then every agent may take it (performance.md F2)
    a = workspace.register("a")
    b = workspace.register("b")
    j = workspace.submit(SPEC)
    assert workspace.lease(a)["jobs"][0]["job"] == j
    th, res = timed(lambda: workspace.lease(b, wait=20))
    time.sleep(0.5)
    assert th.is_alive()
    assert workspace.finish(a, j, 1, reason="preempted")[0] == 200
    th.join(15)
    assert [(x["job"], x["attempt"]) for x in res["r"]["jobs"]] == [(j, 2)]
    assert res["t"] < 0.5 + 3


def test_long_poll_not_woken_by_a_job_it_cannot_take(workspace):
    sec = workspace.register("n1")
    th, res = timed(lambda: workspace.lease(sec, wait=1.5))
    time.sleep(0.3)
    workspace.submit(SPEC, placement={"agent": "elsewhere"})
    th.join(10)
    assert res["r"]["jobs"] == [] and res["t"] >= 1.4


def test_long_poll_wait_is_capped():
    ws = Workspace(poll_max_wait="1s").start()
    sec = ws.register()
    t = time.monotonic()
    assert ws.lease(sec, wait=30)["jobs"] == []
    assert time.monotonic() - t < 5
    ws.stop()


def test_many_parked_polls_do_not_block_the_server(workspace):
    secs = [workspace.register(f"n{i}") for i in range(12)]
    threads = [timed(lambda s=s: workspace.lease(s, wait=4)) for s in secs]
    time.sleep(0.3)
    t = time.monotonic()
    assert workspace.api("GET", "/api/v1/jobs")[0] == 200  # 12 > 4 pool threads
    assert time.monotonic() - t < 2
    for th, _ in threads:
        th.join(15)


def test_lease_bad_body(workspace):
    sec = workspace.register()
    for body, field in [({"wait": "x"}, "wait"), ({"running": [{"job": 1}]},
                                                   "running[0].attempt"),
                        ({"queue_room": -1}, "queue_room"), ({"bogus": 1}, "bogus")]:
        st, _, b = workspace.api("POST", "/api/v1/agents/lease", json=body, token=sec)
        assert st == 400 and b["error"]["field"] == field, b


def test_parked_poll_of_a_revoked_or_dead_agent_takes_no_job():
    # An agent's long-poll is parked when the agent is revoked (stopped, so
    # its socket stays open) or killed (its socket closed): a job submitted
    # then must not go to that poll (nobody would run it; it would end
    # `lost` a lease TTL later) but wait for an agent that can run it.
    from harness.agent import Agent
    ws = Workspace(lease_ttl="60s", poll="60s", poll_max_wait="60s").start()

    def stays_queued(job):
        time.sleep(1.0)
        j = ws.job(job)
        assert j["state"] == "queued" and not j["attempts"], j

    try:
        frozen = Agent(ws, heartbeat_interval="60s").start()
        time.sleep(1.0)  # its poll is parked at the workspace
        frozen.signal(signal.SIGSTOP)
        st, _, b = ws.api("DELETE", f"/api/v1/agents/{frozen.name}")
        assert st == 200, b
        job = ws.submit(name="not-for-the-revoked", command=["true"])
        stays_queued(job)

        ag = Agent(ws, heartbeat_interval="60s").start()
        j = ag.wait_job(job, "succeeded", timeout=30)
        assert [a["agent"] for a in j["attempts"]] == [ag.name], j
        time.sleep(1.0)  # parked again
        ag.kill9()
        job = ws.submit(name="not-for-the-dead", command=["true"])
        stays_queued(job)
        ag.start()
        j = ag.wait_job(job, "succeeded", timeout=30)
        assert [a["attempt"] for a in j["attempts"]] == [1], j
        frozen.signal(signal.SIGCONT)
    finally:
        ws.stop()


def test_a_replaced_parked_poll_does_not_hand_back_the_newer_polls_jobs(workspace):
    # An agent drops a held poll when it begins to drain or is preempted
    # (docs/protocol.md); over TLS the server may not see that socket close
    # for a while.  Here the dropped poll's connection is kept open, as
    # such a poll looks to the server.  The agent (restarted) polls again
    # and takes a job; its next event wakes the old parked poll, which
    # must not act on its stale body (`preempting`, nothing running): that
    # handed the new attempt back, again and again (a handed_back storm).
    ws = workspace
    sec = ws.register()
    j = ws.submit(SPEC)
    stale = {}

    def old_poll():
        stale["reply"] = ws.api(
            "POST", "/api/v1/agents/lease", token=sec, timeout=40,
            json={"wait": 30, "queue_room": 0, "preempting": True,
                  "running": []})

    t = threading.Thread(target=old_poll, daemon=True)
    t.start()
    time.sleep(0.5)  # parked: nothing to say to it
    assert "reply" not in stale
    got = ws.lease(sec, queue_room=1)["jobs"]
    assert [(g["job"], g["attempt"]) for g in got] == [(j, 1)]
    st, _, b = ws.events(sec, j, 1, [{"seq": 1, "time": 1.0,
                                      "type": "started", "pid": 0}])
    assert st == 200, b
    t.join(10)
    st, _, b = stale["reply"]
    assert st == 409 and b["error"]["code"] == "conflict", (st, b)
    job = ws.job(j)
    assert [(a["attempt"], a["state"]) for a in job["attempts"]] == \
        [(1, "running")], job
    r = ws.lease(sec, running=[(j, 1)])
    assert r["renewed"] and not r["lost"] and not r["jobs"], r


def test_a_fitting_job_behind_a_thousand_unfitting_ones_is_given(workspace):
    # The queue is read in priority order until the poll's room is filled:
    # a CPU node must get the CPU job queued behind 1,001 GPU jobs that
    # only another (GPU) node can run (it read the first 1,000 only).
    ws = workspace
    ws.register("gpu-node", gpus=1)
    cpu = ws.register("cpu-node")
    for i in range(1001):
        ws.submit({"name": f"gpu-{i}", "command": ["true"],
                   "resources": {"gpus": 1}}, priority=5)
    j = ws.submit({"name": "cpu", "command": ["true"]})
    got = ws.lease(cpu, queue_room=1)["jobs"]
    assert [g["job"] for g in got] == [j], got
