"""Multi-node jobs, first slice (docs/multi-node.md): the job spec's
`nodes`, `processes_per_node` and `outputs_from`; `network: none` with
more than one node refused at submit naming the field; a multi-node job is
never handed to a single agent's poll, and is `unschedulable` at once when
fewer registered agents match than it has nodes."""
import json
import os
import sqlite3
import threading
import time

from harness.agent import Agent
from harness.common import wait_until
from harness.workspace import Workspace

SPEC = {"name": "ddp", "command": ["true"]}


def _submit(ws, **kw):
    spec = dict(SPEC)
    spec.update(kw)
    return ws.api("POST", "/api/v1/jobs", json=spec)


def test_nodes_fields_accepted_with_defaults(workspace):
    # nodes: 1 with network none is an ordinary job, as before
    st, _, b = _submit(workspace, nodes=1, network="none")
    assert st == 201, b
    st, _, b = _submit(workspace, nodes=2, processes_per_node=4,
                       outputs_from="all")
    assert st == 201, b
    st, _, b = _submit(workspace, outputs_from="rank0")
    assert st == 201, b


def test_network_none_with_nodes_is_refused_naming_the_field(workspace):
    st, _, b = _submit(workspace, nodes=2, network="none")
    assert st == 400 and b["error"]["field"] == "network", b
    assert "nodes" in b["error"]["message"], b
    st, _, b = _submit(workspace, nodes=2, launcher="slurm")
    assert st == 400 and b["error"]["field"] == "nodes", b
    for bad, field in [({"nodes": 0}, "nodes"), ({"nodes": "2"}, "nodes"),
                       ({"nodes": 1.5}, "nodes"), ({"nodes": 257}, "nodes"),
                       ({"processes_per_node": 0}, "processes_per_node"),
                       ({"outputs_from": "rank1"}, "outputs_from"),
                       ({"outputs_from": 0}, "outputs_from")]:
        st, _, b = _submit(workspace, **bad)
        assert st == 400 and b["error"]["field"] == field, (bad, b)
    # nothing half-written: no job was made by the refused submits
    st, _, b = workspace.api("GET", "/api/v1/jobs")
    assert st == 200 and b["jobs"] == [], b


def test_gang_job_never_goes_to_one_agent(workspace):
    a = workspace.register("n1")
    b = workspace.register("n2")
    gang = workspace.submit(SPEC, nodes=2)
    one = workspace.submit(SPEC, name="one")
    got = [j["job"] for j in workspace.lease(a, queue_room=5)["jobs"]]
    got += [j["job"] for j in workspace.lease(b, queue_room=5)["jobs"]]
    assert got == [one], got
    jb = workspace.job(gang)
    assert jb["state"] == "queued", jb
    assert jb["queue_reason"].startswith("waiting:"), jb


def test_more_nodes_than_matching_agents_is_unschedulable(workspace):
    workspace.register("n1", labels=["gpu"])
    workspace.register("n2")
    jid = workspace.submit(SPEC, nodes=2, placement={"labels": ["gpu"]})
    qr = workspace.job(jid)["queue_reason"]
    assert qr.startswith("unschedulable:") and "2 nodes" in qr, qr
    assert "1 registered agent " in qr, qr
    jid = workspace.submit(SPEC, nodes=3)
    qr = workspace.job(jid)["queue_reason"]
    assert qr.startswith("unschedulable:") and "3 nodes" in qr, qr


def test_local_submit_of_a_multi_node_job_is_refused(tmp_path):
    ag = Agent(None)
    spec = tmp_path / "gang.json"
    spec.write_text(json.dumps(dict(SPEC, nodes=2)))
    r = ag.cmd("submit", str(spec), check=False)
    assert r.returncode != 0 and "nodes" in r.stderr, r.stderr
    assert len(ag.cmd("jobs").stdout.strip().splitlines()) == 1


def _write_gang(ws, jid, first, agents, deadline=600):
    """Write a gang of len(agents) ranks for job jid, its rank 0 being
    attempt `first`, as gang reservation will (docs/multi-node.md):
    rank r is attempt first + r; jobs.attempt names the gang's rank 0."""
    ws.stop()
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    now = time.time()
    for rank, name in enumerate(agents):
        [(aid,)] = db.execute("SELECT id FROM agents WHERE name = ?", (name,))
        db.execute("INSERT INTO attempts(job, attempt, rank, agent_id, state, "
                   "started_at, lease_deadline) VALUES (?,?,?,?,'assigned',?,?)",
                   (jid, first + rank, rank, aid, now, now + deadline))
    db.execute("UPDATE jobs SET state = 'assigned', attempt = ? WHERE id = ?",
               (first, jid))
    db.commit()
    db.close()
    ws.start()


STARTED = [{"seq": 1, "time": 1.0, "type": "started", "pid": 42}]


def test_rank_attempts_are_fenced_and_cancelled_as_one_gang(workspace):
    """Each rank of a gang is an ordinary attempt with its own number: its
    agent is offered it with `rank` and `nodes`, reports to it, and hears
    the job's cancel; once the job moves to a new gang, the old ranks get
    409 like any superseded attempt."""
    ws = workspace
    a = ws.register("n1")
    b = ws.register("n2")
    jid = ws.submit(SPEC, nodes=2)
    _write_gang(ws, jid, 1, ["n1", "n2"])
    [ia] = ws.lease(a)["jobs"]
    [ib] = ws.lease(b)["jobs"]
    assert (ia["attempt"], ia["rank"], ia["nodes"]) == (1, 0, 2), ia
    assert (ib["attempt"], ib["rank"], ib["nodes"]) == (2, 1, 2), ib
    st, _, body = ws.events(b, jid, 2, STARTED)
    assert st == 200, body
    assert ws.events(a, jid, 2, STARTED)[0] == 404  # not a's rank
    assert ws.job(jid)["state"] == "running"
    r = ws.lease(b, running=[(jid, 2)])
    assert [x["attempt"] for x in r["renewed"]] == [2] and not r["lost"], r
    # a new gang (3, 4) supersedes the old ranks
    _write_gang(ws, jid, 3, ["n2", "n1"])
    st, _, body = ws.events(b, jid, 2, [dict(STARTED[0], seq=2)])
    assert st == 409, body
    st, _, body = ws.events(a, jid, 4, STARTED)
    assert st == 200, body
    st, _, body = ws.api("POST", f"/api/v1/jobs/{jid}/cancel")
    assert st in (200, 202), body
    ca = ws.lease(a, running=[(jid, 4)])["cancel"]
    cb = ws.lease(b, running=[(jid, 3)])["cancel"]
    assert [(c["job"], c["attempt"]) for c in ca] == [(jid, 4)], ca
    assert [(c["job"], c["attempt"]) for c in cb] == [(jid, 3)], cb


def test_gang_succeeds_only_when_every_rank_exits_0(workspace):
    ws = workspace
    a = ws.register("n1")
    b = ws.register("n2")
    jid = ws.submit(SPEC, nodes=2)
    _write_gang(ws, jid, 1, ["n1", "n2"])
    st, _, body = ws.finish(a, jid, 1)
    assert st == 200, body
    assert ws.job(jid)["state"] in ("assigned", "running"), ws.job(jid)
    assert ws.lease(b, running=[(jid, 2)])["cancel"] == []
    st, _, body = ws.finish(b, jid, 2)
    assert st == 200, body
    jb = ws.job(jid)
    assert jb["state"] == "succeeded" and jb["reason"] == "succeeded", jb


def test_first_rank_to_fail_decides_and_the_others_are_stopped(workspace):
    ws = workspace
    a = ws.register("n1")
    b = ws.register("n2")
    jid = ws.submit(SPEC, nodes=2)
    _write_gang(ws, jid, 1, ["n1", "n2"])
    st, _, body = ws.finish(b, jid, 2, reason="failed", exit_code=3)
    assert st == 200, body
    jb = ws.job(jid)
    assert jb["state"] == "failed" and jb["reason"] == "failed", jb
    [r1] = [x for x in jb["attempts"] if x["attempt"] == 2]
    assert r1["exit_code"] == 3, r1
    # rank 0 is told to stop, and its end (cancelled) changes nothing
    ca = ws.lease(a, running=[(jid, 1)])["cancel"]
    assert [(c["job"], c["attempt"]) for c in ca] == [(jid, 1)], ca
    assert ws.lease(b)["cancel"] == []
    st, _, body = ws.finish(a, jid, 1, reason="cancelled", exit_code=None)
    assert st == 200, body
    jb = ws.job(jid)
    assert jb["state"] == "failed" and jb["reason"] == "failed", jb
    assert ws.lease(a)["cancel"] == []


def test_a_rank_handed_back_requeues_the_whole_gang(workspace):
    ws = workspace
    a = ws.register("n1")
    b = ws.register("n2")
    jid = ws.submit(SPEC, nodes=2)
    _write_gang(ws, jid, 1, ["n1", "n2"])
    st, _, body = ws.api("POST", f"/api/v1/attempts/{jid}/2/handback",
                         json={}, token=b)
    assert st == 200, body
    assert ws.job(jid)["state"] == "queued", ws.job(jid)
    ca = ws.lease(a, running=[(jid, 1)])["cancel"]
    assert [(c["job"], c["attempt"]) for c in ca] == [(jid, 1)], ca


def test_a_gang_ended_uncounted_does_not_count_against_retries(workspace):
    """retries: 1.  Gang 1: rank 1 handed back (not counted), rank 0 then
    ends cancelled; gang 2: a rank's lease lapses (lost, counted): the job
    is queued again, as gang 2 is the first to count."""
    ws = workspace
    a = ws.register("n1")
    b = ws.register("n2")
    jid = ws.submit(SPEC, nodes=2, retries=1)
    _write_gang(ws, jid, 1, ["n1", "n2"])
    st, _, body = ws.api("POST", f"/api/v1/attempts/{jid}/2/handback",
                         json={}, token=b)
    assert st == 200, body
    st, _, body = ws.finish(a, jid, 1, reason="cancelled", exit_code=None)
    assert st == 200, body
    _write_gang(ws, jid, 3, ["n1", "n2"], deadline=-100)  # lapsed
    wait_until(lambda: ws.job(jid)["state"] != "assigned", 20)
    jb = ws.job(jid)
    assert jb["state"] == "queued", jb


def _parked(ws):
    return ws.api("GET", "/api/v1/stats")[2]["parked_leases"]


def _park(ws, secret, out, wait=15):
    """A lease poll from another thread, parked until it has news.  Returns
    once the workspace counts it parked: a poll that came later would find
    this one's agent a free rank and take rank 0 itself (the tests say
    which agent holds which rank)."""
    before = _parked(ws)
    t = threading.Thread(target=lambda: out.append(ws.lease(secret, wait=wait)))
    t.start()
    wait_until(lambda: _parked(ws) > before or not t.is_alive(), 10,
               what="the lease poll parked")
    return t


def _reserve(ws, a, b, **spec):
    jid = ws.submit(SPEC, nodes=2, **spec)
    got = []
    t = _park(ws, b, got)
    # a waits too: under load b's poll may not be parked yet after
    # _park's second, and the gang goes out once both polls wait
    [ia] = ws.lease(a, wait=15)["jobs"]
    t.join(20)
    [ib] = got[0]["jobs"]
    return jid, ia, ib


def test_gang_is_reserved_on_agents_with_a_free_slot_now(workspace):
    ws = workspace
    a = ws.register("n1")
    b = ws.register("n2")
    jid, ia, ib = _reserve(ws, a, b)
    assert (ia["job"], ia["attempt"], ia["rank"], ia["nodes"]) == \
        (jid, 1, 0, 2), ia
    assert (ib["job"], ib["attempt"], ib["rank"], ib["nodes"]) == \
        (jid, 2, 1, 2), ib
    jb = ws.job(jid)
    assert jb["state"] == "assigned" and jb["attempt"] == 1, jb
    assert sorted(x["agent"] for x in jb["attempts"]) == ["n1", "n2"], jb
    # both accept and succeed: the job succeeds
    assert ws.finish(a, jid, 1)[0] == 200
    assert ws.finish(b, jid, 2)[0] == 200
    assert ws.job(jid)["state"] == "succeeded"


def test_ranks_not_accepted_in_time_are_cancelled_and_the_job_waits():
    # gang_start_timeout shortened (default 60s) so the test takes seconds
    ws = Workspace(gang_start_timeout="2s").start()
    try:
        a = ws.register("n1")
        b = ws.register("n2")
        jid, ia, ib = _reserve(ws, a, b)
        ws.lease(a, running=[(jid, 1)])  # n1 accepts; n2 never polls again
        wait_until(lambda: ws.job(jid)["state"] == "queued", 15)
        qr = ws.job(jid)["queue_reason"]
        assert "n2" in qr and "did not accept" in qr, qr
        ca = ws.lease(a, running=[(jid, 1)])["cancel"]
        assert [(c["job"], c["attempt"]) for c in ca] == [(jid, 1)], ca
        # the next gang is numbered after the last rank, and not counted
        st, _, body = ws.events(a, jid, 1, [
            {"seq": 1, "time": 1.0, "type": "final", "reason": "cancelled",
             "exit_code": None, "signal": 15, "peak_memory_bytes": 1,
             "cpu_seconds": 0.1, "durations": {"run": 0.1}}])
        assert st == 200, body
        got = []
        t = _park(ws, a, got)
        [ib2] = ws.lease(b, wait=15)["jobs"]  # as in _reserve
        t.join(20)
        [ia2] = got[0]["jobs"]
        assert (ib2["attempt"], ib2["rank"]) == (3, 0), ib2
        assert (ia2["attempt"], ia2["rank"]) == (4, 1), ia2
    finally:
        ws.stop()


def test_a_rank_offered_again_takes_the_slot_the_poll_offered(workspace):
    # n2's parked poll is handed rank 1 of the first gang, but n2 never
    # read that reply; its next poll still offers its one free slot, and
    # the rank offered again takes it: no rank of the second gang with it
    ws = workspace
    a, b, c = ws.register("n1"), ws.register("n2"), ws.register("n3")
    j1, ia, ib = _reserve(ws, a, b)
    j2 = ws.submit(SPEC, nodes=2)
    got = []
    t = _park(ws, c, got, wait=3)
    rep = ws.lease(b, queue_room=2, free={"slots": 1})
    t.join(20)
    assert [(x["job"], x["attempt"]) for x in rep["jobs"]] == [(j1, 2)], rep
    assert got[0]["jobs"] == [], got
    assert ws.job(j2)["state"] == "queued", ws.job(j2)


# --- real agents ---------------------------------------------------------
# Several agents on this machine: each gets its own `machine_id` setting
# (docs/configuration.md), as two state dirs with one /etc/machine-id are
# otherwise one machine attached twice (refused).

def _agents(workspace, agent_factory, n):
    tag = os.path.basename(workspace.dir.rstrip("/ws"))[-6:] or "x"
    return [agent_factory(machine_id=f"mn-{tag}-{os.getpid()}-{i}").start()
            for i in range(n)]


def test_two_node_job_runs_on_two_real_agents(workspace, agent_factory):
    _agents(workspace, agent_factory, 2)
    jid = workspace.submit(SPEC, nodes=2,
                           command=["sh", "-c", "echo rank $TETHER_ATTEMPT"])
    wait_until(lambda: workspace.job(jid)["state"] not in
               ("queued", "assigned", "running"), 60, what="the gang to end")
    jb = workspace.job(jid)
    assert jb["state"] == "succeeded", jb
    atts = jb["attempts"]
    assert len(atts) == 2 and len({x["agent"] for x in atts}) == 2, atts
    assert all(x["reason"] == "succeeded" for x in atts), atts


def test_failing_rank_fails_the_gang_and_stops_the_other(workspace,
                                                          agent_factory):
    _agents(workspace, agent_factory, 2)
    # rank 1 (attempt 2) exits 3 after a second; rank 0 only sleeps
    script = 'if [ "$TETHER_ATTEMPT" = 2 ]; then sleep 1; exit 3; fi; sleep 120'
    jid = workspace.submit(SPEC, nodes=2, command=["sh", "-c", script])
    wait_until(lambda: workspace.job(jid)["state"] == "failed", 60,
               what="the gang to fail")
    t0 = time.time()
    wait_until(lambda: all(x["state"] not in ("assigned", "running",
                                                "cancelling")
                           for x in workspace.job(jid)["attempts"]), 30,
               what="rank 0 to be stopped")
    assert time.time() - t0 < 2 + 2  # kill_grace (harness: 2s) + 2 s
    by = {x["attempt"]: x for x in workspace.job(jid)["attempts"]}
    assert by[2]["reason"] == "failed" and by[2]["exit_code"] == 3, by
    assert by[1]["reason"] == "cancelled", by
    assert workspace.job(jid)["reason"] == "failed"


def test_two_gangs_on_three_agents_one_waits_then_both_finish(
        workspace, agent_factory):
    # max_jobs 1 (default 4): one slot per agent, so the second gang finds
    # only one agent with a free slot while the first gang runs
    for i in range(3):
        agent_factory(machine_id=f"mn3-{os.getpid()}-{time.time()}-{i}",
                      max_jobs=1).start()
    j1 = workspace.submit(SPEC, nodes=2, command=["sleep", "3"])
    j2 = workspace.submit(SPEC, nodes=2, command=["sleep", "3"])
    seen_wait = False
    seen = []

    def both_done():
        nonlocal seen_wait
        s = {workspace.job(j)["state"] for j in (j1, j2)}
        seen.append(tuple(workspace.job(j)["state"] for j in (j1, j2)))
        seen_wait = seen_wait or ("queued" in s and "running" in s)
        return s == {"succeeded"}
    wait_until(both_done, 90, what="both gangs to succeed", interval=0.2)
    assert seen_wait, sorted(set(seen))
    # no agent was given a rank while it ran another: per agent, each
    # attempt was assigned after the one before it ended
    per = {}
    for j in (j1, j2):
        for x in workspace.job(j)["attempts"]:
            per.setdefault(x["agent"], []).append(x)
    for agent, xs in per.items():
        xs.sort(key=lambda x: x["started_at"])
        for prev, nxt in zip(xs, xs[1:]):
            assert nxt["started_at"] >= prev["ended_at"] - 0.05, (agent, xs)


def test_agent_killed_past_its_lease_fences_the_gang_which_runs_again(
        workspace, agent_factory):
    """kill -9 of rank 1's agent for longer than the lease (workspace
    harness: lease_ttl 3s + lost_grace 1s + lost_margin 0.5s): rank 1 is
    lost, rank 0 is stopped, and with retries: 1 the gang runs again (once
    the agent is back) and succeeds."""
    ags = _agents(workspace, agent_factory, 2)
    # the first gang (attempts 1 and 2) only sleeps; the second one succeeds
    script = 'if [ "$TETHER_ATTEMPT" -le 2 ]; then sleep 120; fi; echo done'
    jid = workspace.submit(SPEC, nodes=2, retries=1,
                           command=["sh", "-c", script])
    wait_until(lambda: workspace.job(jid)["state"] == "running", 30,
               what="the gang to run")
    wait_until(lambda: all(x["state"] == "running"
                           for x in workspace.job(jid)["attempts"]), 30)
    by_agent = {x["agent"]: x["attempt"] for x in workspace.job(jid)["attempts"]}
    victim = next(a for a in ags if by_agent.get(a.name) == 2)
    victim.kill9()
    wait_until(lambda: any(x["attempt"] == 2 and x["state"] == "lost"
                           for x in workspace.job(jid)["attempts"]), 30,
               what="rank 1 to be lost")
    wait_until(lambda: next(x for x in workspace.job(jid)["attempts"]
                            if x["attempt"] == 1)["state"] not in
               ("assigned", "running", "cancelling"), 30,
               what="rank 0 to be stopped")
    victim.start()
    wait_until(lambda: workspace.job(jid)["state"] == "succeeded", 60,
               what="the second gang to succeed")
    atts = {x["attempt"]: x for x in workspace.job(jid)["attempts"]}
    assert sorted(atts) == [1, 2, 3, 4], atts
    assert atts[3]["reason"] == atts[4]["reason"] == "succeeded", atts
