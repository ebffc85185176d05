"""Scheduling on a Slurm agent uses its partitions, not the head node
(issue 28): a job larger than the head node but within one node of the
partition reaches Slurm and runs; one larger than any node stays queued
with its reason."""
import os

from harness import slurm
from harness.common import wait_until


def test_job_bigger_than_head_node_reaches_slurm(workspace, agent_factory,
                                                 slurm_cluster, monkeypatch):
    """Scenario: a Slurm head node that offers 1 CPU itself (`cpus = 1`,
    a small login node) in front of a partition whose node has
    `slurm_cluster.cpus` CPUs; a job asking for all of them, then one
    asking for more than any node has.  Pass: the first is leased to the
    agent, submitted to Slurm and succeeds; the second stays queued,
    `unschedulable` for its cpus."""
    c = slurm_cluster
    # The agent's environment reaches its runners and their Slurm commands.
    monkeypatch.setenv("SLURM_CONF", c.conf)
    # cpus = 1: the head node is smaller than the job (the point here).
    ag = agent_factory(default_launcher="slurm", cpus=1).start()

    def partitions():
        st, _, b = workspace.api("GET", "/api/v1/agents")
        a = [x for x in b["agents"] if x["name"] == ag.name][0]
        return (a["capacity"].get("slurm") or {}).get("partitions")
    parts = wait_until(partitions, 30, what="the partitions at the workspace")
    assert parts[0]["node_cpus"] == c.cpus, parts
    job = workspace.submit(name="wide", command=["sh", "-c", "echo wide"],
                           resources={"cpus": c.cpus, "memory": "64M"})
    j = ag.wait_job(job, timeout=120)
    assert j["state"] == "succeeded", (j, ag.output()[-2000:])
    ref = slurm.read_json(os.path.join(ag.attempt_dir(job), "state.json"))
    assert ref["launcher"] == "slurm" and ref["launcher_ref"], ref
    assert b"wide\n" in ag.ws_log(job)

    big = workspace.submit(name="too-wide", command=["true"],
                           resources={"cpus": c.cpus * 8})
    wait_until(lambda: workspace.job(big)["queue_reason"], 10,
               what="a queue reason")
    jb = workspace.job(big)
    assert jb["state"] == "queued", jb
    assert "cpus request" in jb["queue_reason"], jb
