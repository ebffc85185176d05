"""The agent in front of a Slurm cluster (issue 10): the cluster's partitions
reach the workspace in the heartbeat (capacity.slurm.partitions), shown by
GET /api/v1/agents and `tether agents --json`; the slurm runner settings
(account, qos, poll) reach spec.json."""
import json
import os
import subprocess

from harness.common import binary, wait_until


def _mine(workspace, ag):
    st, _, body = workspace.api("GET", "/api/v1/agents")
    assert st == 200, body
    return [x for x in body["agents"] if x["name"] == ag.name][0]


def _partitions(workspace, ag):
    cap = _mine(workspace, ag)["capacity"]
    return {p["name"]: p for p in
            (cap.get("slurm") or {}).get("partitions") or []}


def test_slurm_partitions_in_heartbeat(workspace, agent_factory,
                                       slurm_cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.conf)
    ag = agent_factory(slurm_capacity="on", slurm_account="acct-x",
                       slurm_qos="qos-y", slurm_poll="700ms").start()
    try:
        parts = wait_until(lambda: _partitions(workspace, ag), 20,
                           what="slurm partitions in the agent's capacity")
    except TimeoutError:
        raise AssertionError(ag.output()[-3000:])
    debug = parts["debug"]
    assert debug["default"] is True and debug["state"] == "UP", debug
    assert debug["cpus"] == slurm_cluster.cpus
    assert 0 <= debug["idle_cpus"] <= debug["cpus"]

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TETHER_") or k == "TETHER_BUILD_DIR"}
    env.update(TETHER_WORKSPACE=workspace.url,
               TETHER_TOKEN=workspace.admin_token, TETHER_CA=workspace.ca_file,
               XDG_CONFIG_HOME=os.path.join(ag.base, "nocfg"))
    r = subprocess.run([binary("tether"), "agents", "--json"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    mine = [x for x in json.loads(r.stdout)["agents"]
            if x["name"] == ag.name][0]
    assert mine["capacity"]["slurm"]["partitions"][0]["name"] == "debug"

    # The runner settings the agent writes carry the slurm keys.
    job = workspace.submit(name="s", command=["true"])
    ag.wait_job(job, "succeeded", timeout=60)
    with open(os.path.join(ag.attempt_dir(job), "spec.json")) as f:
        slurm = json.load(f)["runner"]["slurm"]
    assert (slurm["account"], slurm["qos"], slurm["poll_ms"]) == \
        ("acct-x", "qos-y", 700), slurm


def test_slurm_capacity_off_sends_none(workspace, agent_factory,
                                       slurm_cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.conf)
    ag = agent_factory(slurm_capacity="off").start()
    job = workspace.submit(name="s", command=["true"])
    ag.wait_job(job, "succeeded", timeout=60)
    assert "slurm" not in _mine(workspace, ag)["capacity"]
    assert "slurm capacity" not in ag.output()
