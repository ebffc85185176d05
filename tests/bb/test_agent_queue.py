"""The agent's durable queue: slots, priority order, jobs too big for the
node, locally submitted jobs."""
import json
import os

from harness.agent import Agent
from harness.common import wait_until

TIMED = "date +%s.%N; sleep 1; date +%s.%N"


def times(agent, job):
    lines = agent.ws_log(job).decode().split()
    stamps = [float(x) for x in lines if x.replace(".", "", 1).isdigit()]
    return stamps[0], stamps[-1]


def test_ten_jobs_two_at_a_time_in_priority_order(workspace, agent_factory):
    prios = [0, 5, -3, 9, 2, 5, 7, -1, 1, 3]
    jobs = {workspace.submit(name=f"p{p}-{i}", command=["sh", "-c", TIMED],
                             priority=p): p for i, p in enumerate(prios)}
    ag = agent_factory(max_jobs=2, prefetch=2).start()
    for j in jobs:
        ag.wait_job(j, "succeeded", timeout=90)
    spans = {j: times(ag, j) for j in jobs}
    # Never more than two at once, and two at once at some point.
    points = sorted([(s, 1) for s, _ in spans.values()] +
                    [(e, -1) for _, e in spans.values()], key=lambda x: (x[0], x[1]))
    cur = peak = 0
    for _, d in points:
        cur += d
        peak = max(peak, cur)
    assert peak == 2, spans
    # Started in priority order: no job started a slot (1 s) before one of
    # higher priority.  Two that start together (a pair of free slots) may
    # race to their first `date`, hence the tolerance of half a slot.
    for hi in jobs:
        for lo in jobs:
            if jobs[hi] > jobs[lo]:
                assert spans[hi][0] < spans[lo][0] + 0.5, \
                    (jobs[hi], jobs[lo], spans)


def test_local_job_too_big_is_refused_at_submit(tmp_path):
    ag = Agent(None, memory="1G", cpus=1)
    spec = tmp_path / "big.json"
    spec.write_text(json.dumps({"name": "big", "command": ["true"],
                                "resources": {"memory": "4G"}}))
    r = ag.cmd("submit", str(spec), check=False)
    assert r.returncode != 0
    assert "refused" in r.stderr and "memory" in r.stderr, r.stderr
    assert "L" not in r.stdout
    r = ag.cmd("jobs")
    assert "big" not in r.stdout and len(r.stdout.strip().splitlines()) == 1


def test_workspace_job_too_big_for_node_gets_reason(workspace, agent_factory):
    ag = agent_factory(max_jobs=1, prefetch=1).start()
    busy = workspace.submit(name="busy", command=["sleep", "4"])
    ag.wait_job(busy, "running", timeout=30)
    big = workspace.submit(name="big", command=["true"],
                           resources={"memory": "2G"})
    wait_until(lambda: ag.local_state(big) == "queued", 15,
               what="the big job to wait in the agent's queue")
    # The node shrinks while the job waits (settings changed across a
    # restart): the agent must refuse it with a reason, not keep it.
    ag.cmd("drain", "--now")
    assert ag.wait_exit(10) == 0
    ag.settings["memory"] = "1G"
    ag.write_conf()
    ag.start()
    j = ag.wait_job(big, "launch_failed", timeout=30)
    msg = j["attempts"][-1]["message"] or ""
    assert "memory" in msg and "offers" in msg, j
    ag.wait_job(busy, "succeeded", timeout=30)
    # The workspace was told the new capacity in the heartbeat.
    st, _, agents = workspace.api("GET", "/api/v1/agents")
    mine = [x for x in agents["agents"] if x["name"] == ag.name][0]
    assert mine["capacity"]["memory"] == 1 << 30, mine


def test_local_submit_runs_without_workspace(tmp_path):
    ag = Agent(None, max_jobs=1)
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"name": "local", "command": [
        "sh", "-c", "echo local-out; echo data > $TETHER_OUTPUTS/o.txt"]}))
    ag.start()
    r = ag.cmd("submit", str(spec))
    job = r.stdout.strip()
    assert job.startswith("L")
    # logs -f follows the job to its end.
    wait_until(lambda: os.path.isdir(ag.attempt_dir(job)), 30,
               what="the attempt directory")
    assert "local-out" in ag.cmd("logs", job, "-f", timeout=60).stdout
    wait_until(lambda: ag.local_state(job) == "done", 60,
               what="the local job to finish")
    assert "local-out" in ag.cmd("logs", job).stdout
    out = ag.cmd("outputs", job).stdout
    assert "o.txt" in out
    path = out.split("\t")[0]
    with open(path) as f:
        assert f.read() == "data\n"
    assert job in ag.cmd("jobs").stdout
    assert ag.stop() == 0
