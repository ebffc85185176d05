"""kill -9 of the agent while jobs run (issue 13, items 1 and 2).

Durations: the kill loop runs a minute by default, as the issue asks
(TETHER_LONG=1: 10 minutes; TETHER_KILL_LOOP_S overrides)."""
import hashlib
import os
import random
import subprocess
import time

from harness.common import wait_until
from test_agent_recovery import BIG_JOB, expected_output

LOOP_S = float(os.environ.get("TETHER_KILL_LOOP_S") or
               (600 if os.environ.get("TETHER_LONG") == "1" else 60))


def runners_by_attempt(ag):
    """{attempt dir: number of supervising tether-runner processes in it}
    (a runner's own children, e.g. the sandbox's init, are not counted)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True,
                         text=True).stdout
    procs = {}
    for line in out.splitlines():
        pid, ppid, args = line.split(None, 2)
        if "tether-runner run " + ag.state_dir in args:
            procs[pid] = (ppid, args.split()[-1])
    counts = {}
    for pid, (ppid, d) in procs.items():
        if ppid in procs and procs[ppid][1] == d:
            continue
        counts[d] = counts.get(d, 0) + 1
    return counts


def cgroups_by_job(ag):
    """{job: number of job cgroups (<job>_<attempt>) under the agent's
    cgroup parent} in the pids hierarchy (empty when there is none)."""
    base = os.path.join("/sys/fs/cgroup/pids", ag.settings["cgroup_parent"])
    counts = {}
    if os.path.isdir(base):
        for n in os.listdir(base):
            if os.path.isdir(os.path.join(base, n)) and "_" in n:
                job = n.rsplit("_", 1)[0]
                counts[job] = counts.get(job, 0) + 1
    return counts


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_kill9_at_ten_random_points_of_a_50mb_job(workspace, agent_factory):
    """Scenario: the agent is killed -9 at 10 random points (seeded) from
    just after the submit through the job's output and the shipping of its
    ~52 MB log, and restarted each time.  Pass: the job ran once (one
    attempt, its first line printed once); the workspace's log has the same
    sha256 as the node's log file and holds the whole output."""
    ag = agent_factory().start()
    rnd = random.Random(int(os.environ.get("TETHER_SEED", "1013")))
    job = workspace.submit(name="big", command=["sh", "-c", BIG_JOB])
    for i in range(10):
        time.sleep(rnd.uniform(0.0, 0.3) if i == 0 else rnd.uniform(0.2, 1.0))
        ag.kill9()
        time.sleep(rnd.uniform(0.0, 0.3))
        ag.start()
        assert all(n == 1 for n in runners_by_attempt(ag).values())
    j = ag.wait_job(job, "succeeded", timeout=180)
    assert len(j["attempts"]) == 1, j
    with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
        node = f.read()
    got = ag.ws_log(job)
    assert sha(got) == sha(node)
    assert got.count(b"START-MARKER") == 1
    assert expected_output() in got


def job_script(n, iters):
    return (f"echo START-{n}; i=0; while [ $i -lt {iters} ]; do "
            f"seq $((i*1000)) $((i*1000+999)); i=$((i+1)); sleep 0.5; done; "
            f"echo END-{n}")


def test_kill9_loop_while_five_jobs_run(workspace, agent_factory):
    """Scenario: 5 jobs run for about LOOP_S seconds while the agent is
    killed -9 every 1-5 s (random, seeded) and restarted.  Pass: every job
    succeeds exactly once (one attempt, START printed once), every log at
    the workspace is byte for byte the node's log and complete, and never
    more than one runner works on an attempt nor more than one cgroup exists
    for a job."""
    ag = agent_factory(max_jobs=5).start()
    iters = int(LOOP_S * 2) + 4
    jobs = [workspace.submit(name=f"loop{n}", command=["sh", "-c", job_script(n, iters)])
            for n in range(5)]
    for j in jobs:
        ag.wait_job(j, "running", timeout=30)
    rnd = random.Random(int(os.environ.get("TETHER_SEED", "2026")))
    end = time.monotonic() + LOOP_S
    kills = 0
    while time.monotonic() < end:
        time.sleep(rnd.uniform(1.0, 5.0))
        ag.kill9()
        kills += 1
        ag.start()
        counts = runners_by_attempt(ag)
        assert all(n == 1 for n in counts.values()), counts
        cgs = cgroups_by_job(ag)
        assert all(n == 1 for n in cgs.values()), cgs
    assert kills >= 3
    for n, job in enumerate(jobs):
        j = ag.wait_job(job, "succeeded", timeout=120)
        assert len(j["attempts"]) == 1, j
        with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
            node = f.read()
        got = wait_until(lambda: (lambda g: g if g == node else None)(ag.ws_log(job)),
                         30, what=f"job {job}'s log to be complete")
        assert got.count(f"START-{n}\n".encode()) == 1
        want = "".join(f"{k}\n" for k in range(0, iters * 1000)).encode()
        assert want in got and got.endswith(f"END-{n}\n".encode())
