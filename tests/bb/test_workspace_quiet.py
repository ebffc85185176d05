"""The quiet-agent cache (docs/performance.md F2b): a poll of an agent that
runs nothing, is online and not draining is answered from memory.  Each
test lets the agent poll first (so it is quiet, its answer kept), changes
something the way the API does, and checks that the next poll sees it, as
it did when every poll read the database."""
from harness.workspace import Workspace

SPEC = {"name": "quiet", "command": ["true"]}


def quiet(ws, sec, polls=2, **kw):
    for _ in range(polls):
        r = ws.lease(sec, **kw)
        assert r["jobs"] == [] and r["drain"] is False and r["cancel"] == []


def test_a_drain_after_quiet_polls_reaches_the_next_poll(workspace):
    sec = workspace.register("n1")
    quiet(workspace, sec)
    assert workspace.api("POST", "/api/v1/agents/n1/drain")[0] == 200
    workspace.submit(SPEC)
    r = workspace.lease(sec)
    assert r["drain"] is True and r["jobs"] == []


def test_a_revoke_after_quiet_polls_refuses_the_next_poll(workspace):
    sec = workspace.register("n1")
    quiet(workspace, sec)
    assert workspace.api("DELETE", "/api/v1/agents/n1")[0] == 200
    st, _, _ = workspace.api("POST", "/api/v1/agents/lease",
                             json={"wait": 0, "running": []}, token=sec)
    assert st == 401


def test_a_job_submitted_between_quiet_polls_is_given(workspace):
    sec = workspace.register("n1")
    quiet(workspace, sec)
    jid = workspace.submit(SPEC)
    r = workspace.lease(sec)
    assert [j["job"] for j in r["jobs"]] == [jid]
    # the reply was lost (the agent lists nothing): offered again, not
    # answered from memory as if the agent were idle
    r = workspace.lease(sec)
    assert [(j["job"], j["attempt"]) for j in r["jobs"]] == [(jid, 1)]


def test_a_cancel_reaches_an_agent_that_was_quiet(workspace):
    sec = workspace.register("n1")
    quiet(workspace, sec)
    jid = workspace.submit(SPEC)
    assert [j["job"] for j in workspace.lease(sec)["jobs"]] == [jid]
    assert workspace.api("POST", f"/api/v1/jobs/{jid}/cancel")[0] == 200
    r = workspace.lease(sec, running=[(jid, 1)])
    assert [(c["job"], c["attempt"]) for c in r["cancel"]] == [(jid, 1)]


def test_a_capacity_change_is_matched_against_new_jobs(workspace):
    # the fit a quiet poll keeps (for waking it on a submit) follows the
    # capacity the agent reports
    sec = workspace.register("n1", cpus=2)
    quiet(workspace, sec)
    big = workspace.submit(dict(SPEC, resources={"cpus": 8}))
    assert workspace.lease(sec)["jobs"] == []
    r = workspace.lease(sec, capacity={"cpus": 16, "memory": 4 << 30,
                                       "disk": 10 << 30})
    assert [j["job"] for j in r["jobs"]] == [big]


def test_queue_depth_is_the_agents_without_queue_room():
    ws = Workspace().start()
    try:
        sec = ws.register("n1", queue_depth=1)
        for _ in range(2):
            st, _, r = ws.api("POST", "/api/v1/agents/lease",
                              json={"wait": 0, "running": []}, token=sec)
            assert st == 200 and r["jobs"] == []
        a, b = ws.submit(SPEC), ws.submit(SPEC)
        st, _, r = ws.api("POST", "/api/v1/agents/lease",
                          json={"wait": 0, "running": []}, token=sec)
        assert st == 200 and [j["job"] for j in r["jobs"]] == [a]
        assert b
    finally:
        ws.stop()
