"""Multi-node jobs, first slice (docs/multi-node.md): the job spec's
`nodes`, `processes_per_node` and `outputs_from`; `network: none` with
more than one node refused at submit naming the field; a multi-node job is
never handed to a single agent's poll, and is `unschedulable` at once when
fewer registered agents match than it has nodes."""
import json

from harness.agent import Agent

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
