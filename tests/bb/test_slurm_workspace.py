"""Slurm behind one agent, through the workspace (issue 10): 50 short jobs
submitted to the workspace run on Slurm and come back with matching count
and results; kill -9 of the agent while a Slurm job runs leaves the job
alone and, after the restart, the same Slurm job is followed to the end with
the whole log shipped."""
import os
import re

from harness import slurm
from harness.agent import Agent
from harness.common import wait_until
from harness.workspace import Workspace

N = 50


def _agent(agent_factory, slurm_cluster, monkeypatch, **kw):
    # The agent's environment reaches its runners and their Slurm commands.
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.conf)
    return agent_factory(default_launcher="slurm", **kw).start()


def _slurm_id(ag, job):
    return slurm.read_json(os.path.join(ag.attempt_dir(job),
                                        "state.json"))["launcher_ref"]


def test_fifty_jobs_through_the_workspace_to_slurm(workspace, agent_factory,
                                                   slurm_cluster, monkeypatch):
    # The head node's own CPUs do not limit jobs that Slurm places.
    ag = _agent(agent_factory, slurm_cluster, monkeypatch, max_jobs=16,
                prefetch=8, cpus=16)
    jobs = {}
    for i in range(N):
        jobs[i] = workspace.submit(
            name="slurm-%d" % i,
            command=["/bin/sh", "-c", "echo slurm job %d; exit %d"
                     % (i, i % 4)],
            resources={"cpus": 1, "memory": "32M"})
    done = {i: ag.wait_job(j, timeout=300) for i, j in jobs.items()}
    assert len(done) == N
    slurm_ids = set()
    for i, j in done.items():
        want = "succeeded" if i % 4 == 0 else "failed"
        assert j["state"] == want, (i, j)
        assert len(j["attempts"]) == 1, j
        assert j["attempts"][0]["exit_code"] == i % 4, j
        assert b"slurm job %d\n" % i in ag.ws_log(jobs[i])
        slurm_ids.add(_slurm_id(ag, jobs[i]))
    assert len(slurm_ids) == N, "every job is its own Slurm job"
    assert not (slurm_ids & slurm_cluster.queue())


def test_kill9_agent_while_slurm_job_runs(slurm_cluster, monkeypatch):
    # A lease long enough that the restart gap cannot fence the attempt.
    workspace = Workspace(lease_ttl="30s").start()
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.conf)
    ag = Agent(workspace, default_launcher="slurm").start()
    try:
        _kill9_agent_midjob(workspace, ag, slurm_cluster)
    finally:
        if ag.alive():
            ag.kill9()
        workspace.stop()


def _kill9_agent_midjob(workspace, ag, slurm_cluster):
    lines = 80
    job = workspace.submit(
        name="slurm-recover",
        command=["/bin/sh", "-c",
                 "i=1; while [ $i -le %d ]; do printf 'tick %%04d\\n' $i; "
                 "i=$((i+1)); sleep 0.05; done" % lines])
    ag.wait_job(job, "running", timeout=30)
    log_path = os.path.join(ag.attempt_dir(job), "log")
    wait_until(lambda: b"tick 0005" in slurm.read_bytes(log_path), 30,
               what="output in the attempt log")
    slurm_id = _slurm_id(ag, job)
    ag.kill9()
    assert slurm_id in slurm_cluster.queue()
    ag.start()
    j = ag.wait_job(job, "succeeded", timeout=60)
    assert len(j["attempts"]) == 1, j
    assert _slurm_id(ag, job) == slurm_id
    # the job's work dir is its staging one beside the state dir
    work = slurm.work_dir(ag.attempt_dir(job))
    assert slurm.jobs_in_dir(slurm_cluster, work) == [slurm_id], \
        "submitted to Slurm more than once"
    got = ag.ws_log(job)
    assert got == slurm.read_bytes(log_path)
    ticks = [int(x) for x in re.findall(rb"tick (\d{4})\n", got)]
    assert ticks == list(range(1, lines + 1))
