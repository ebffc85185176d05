"""Credentials over time (rotation, re-registration), snapshots, the log
cap and housekeeping of finished attempt directories."""
import json
import os
import shutil
import tempfile

from harness.agent import Agent
from harness.common import wait_until
from harness.life import snapshot


def creds(ag):
    with open(os.path.join(ag.state_dir, "credentials")) as f:
        return json.load(f)


def test_rotate_credential_while_running(workspace, agent):
    old = creds(agent)["secret"]
    r = agent.cmd("rotate-credential")
    assert "rotated" in r.stdout
    new = creds(agent)["secret"]
    assert new != old
    # The old secret is revoked once the new one was used.
    st, _, _ = workspace.api("POST", "/api/v1/agents/lease",
                             json={"wait": 0, "queue_room": 0, "running": []},
                             token=old)
    assert st == 401
    # The running daemon picks the new secret up and keeps working.
    job = workspace.submit(name="after-rotate", command=["true"])
    agent.wait_job(job, "succeeded", timeout=30)
    assert "refused" not in agent.cmd("status").stdout
    assert new not in agent.output() and old not in agent.output()


def test_re_register_replaces_agent(workspace, agent_factory):
    ag = agent_factory().start()
    first = creds(ag)["agent_id"]
    ag.stop()
    ag.token = workspace.token()
    ag.start("--re-register", "--token", ag.token)
    wait_until(lambda: creds(ag)["agent_id"] != first, 15,
               what="a new agent id")
    st, _, agents = workspace.api("GET", "/api/v1/agents")
    states = {a["id"]: a["state"] for a in agents["agents"]}
    assert states[first] == "revoked"
    assert states[creds(ag)["agent_id"]] == "online"


def test_registration_conflict_is_explained(workspace, agent_factory):
    ag = agent_factory().start()
    # A second state dir on the same machine (same machine-id) is another
    # attachment of the same machine: refused unless --re-register.
    other = agent_factory(name=ag.name + "-b")
    other.start(wait_registered=False)
    wait_until(lambda: not other.alive(), 15, what="the second agent to stop")
    assert "409" in other.output() or "exists" in other.output()
    assert "refused" in other.cmd("status").stdout or \
        "registration failed" in other.cmd("status").stdout


def test_snapshot_downloaded_before_start(workspace, agent):
    st, _, b = workspace.api("POST", "/api/v1/snapshots",
                             data=snapshot({"hello.sh": b"echo from-snapshot\n"}),
                             headers={"Content-Type": "application/octet-stream"})
    assert st == 201, b
    job = workspace.submit(name="snap", command=["sh", "hello.sh"],
                           source={"snapshot": b["id"]})
    agent.wait_job(job, "succeeded", timeout=60)
    assert b"from-snapshot\n" in agent.ws_log(job)
    assert os.path.exists(os.path.join(agent.attempt_dir(job),
                                       "snapshot.tar.gz"))


def test_log_cap_marker_is_shipped(workspace, agent_factory):
    ag = agent_factory(max_log_bytes="4K").start()
    job = workspace.submit(name="chatty", command=["sh", "-c", "seq 1 100000"])
    ag.wait_job(job, timeout=60)
    log = ag.ws_log(job)
    assert b"log truncated" in log
    assert len(log) < 8192


def test_finished_attempt_dirs_are_removed_after_retention(workspace,
                                                           agent_factory):
    ag = agent_factory(attempt_retention="1s",
                       housekeeping_interval="1s").start()
    job = workspace.submit(name="short", command=["true"])
    ag.wait_job(job, "succeeded", timeout=30)
    wait_until(lambda: not os.path.exists(ag.attempt_dir(job)), 15,
               what="the attempt directory to be removed")
    assert "done" in ag.cmd("jobs").stdout


def test_disk_budget_removes_oldest_finished_attempts(workspace, agent_factory):
    ag = agent_factory(attempt_disk_budget="200K", housekeeping_interval="1s",
                       max_jobs=1).start()
    jobs = []
    for i in range(3):
        jobs.append(workspace.submit(name=f"fill{i}", command=[
            "sh", "-c", "head -c 120000 /dev/zero | tr '\\0' x"]))
        ag.wait_job(jobs[-1], "succeeded", timeout=60)
    # 3 x ~120K > 200K: the oldest go first, the newest stays.
    wait_until(lambda: not os.path.exists(ag.attempt_dir(jobs[0])), 15,
               what="the oldest attempt directory to be removed")
    assert os.path.exists(ag.attempt_dir(jobs[2]))


def test_output_swapped_for_symlink_is_not_uploaded(workspace, agent_factory):
    decoy = tempfile.mkdtemp(prefix="tether-decoy-", dir="/var/tmp")
    with open(os.path.join(decoy, "a.txt"), "w") as f:
        f.write("root-only-secret\n")
    try:
        ag = agent_factory().start()
        job = workspace.submit(name="swap", command=["sh", "-c",
                               "mkdir $TETHER_OUTPUTS/d; "
                               "echo fine > $TETHER_OUTPUTS/d/a.txt; sleep 1"])
        ag.wait_job(job, "running", timeout=30)
        workspace.kill9()
        res = os.path.join(ag.attempt_dir(job), "result.json")
        wait_until(lambda: os.path.exists(res), 30, what="the job to end")
        with open(res) as f:
            assert [o["path"] for o in json.load(f)["outputs"]] == ["d/a.txt"]
        # A process of the job user swaps a directory on the listed path
        # for a symlink before the agent could upload the file.
        d = os.path.join(ag.attempt_dir(job), "outputs", "d")
        shutil.rmtree(d)
        os.symlink(decoy, d)
        workspace.start()
        ag.wait_job(job, timeout=30)
        st, _, body = workspace.api("GET", f"/api/v1/jobs/{job}/outputs/d/a.txt")
        assert b"root-only-secret" not in (body if isinstance(body, bytes)
                                           else json.dumps(body).encode())
        # Not even sent (the workspace's sha256 check would only have
        # refused to store it): the agent refused to open it.
        assert "output d/a.txt: not a regular file; skipped" in ag.output()
    finally:
        shutil.rmtree(decoy)
