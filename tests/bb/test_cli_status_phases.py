"""Small defects of issue 28 seen in `tether status` and result.json:
phases listed in the order they run; durations written to the
millisecond, not as 300.34800000000001."""
import json
import os
import re

from test_cli_commands import tether


def test_status_lists_phases_in_order(workspace):
    """Scenario: an attempt ends with every phase's duration (plus one this
    CLI does not know).  Pass: `tether status` prints queued, source, env,
    run, outputs in that order, the unknown one after them."""
    sec = workspace.register()
    j = workspace.submit({"name": "phases", "command": ["true"]})
    workspace.lease(sec)
    final = {"seq": 1, "time": 2.0, "type": "final", "reason": "succeeded",
             "exit_code": 0, "signal": None, "peak_memory_bytes": 1,
             "cpu_seconds": 0.1,
             "durations": {"run": 300.348, "source": 1.0, "env": 2.0,
                           "outputs": 0.5, "zzz": 0.25}}
    assert workspace.events(sec, j, 1, [final])[0] == 200
    out = tether(workspace, "status", str(j), check=0).stdout
    names = re.findall(r"^  (queued|source|env|run|outputs|zzz) ", out, re.M)
    assert names == ["queued", "source", "env", "run", "outputs", "zzz"], out
    assert "  run          300.35 s\n" in out, out


def test_result_json_durations_to_the_millisecond(workspace, agent):
    """Scenario: a job runs on a real agent.  Pass: every duration in its
    result.json and in its final event (as written) has at most three
    decimals."""
    job = workspace.submit(name="ms", command=["sh", "-c", "sleep 0.3"])
    agent.wait_job(job, "succeeded", timeout=30)
    d = agent.attempt_dir(job)
    with open(os.path.join(d, "result.json")) as f:
        text = f.read()
    durs = re.search(r'"durations":\{[^}]*\}', text).group(0)
    assert not re.search(r"\.\d{4,}", durs), text
    assert set(json.loads("{" + durs + "}")["durations"]) >= {"run"}, text
    with open(os.path.join(d, "events")) as f:
        final = [line for line in f if '"final"' in line][0]
    durs = re.search(r'"durations":\{[^}]*\}', final).group(0)
    assert not re.search(r"\.\d{4,}", durs), final


def test_pending_substate_in_status_and_cli(workspace):
    """Scenario: an agent (played over the API) reports that its launcher
    queues the attempt (`pending` event, as the slurm launcher sends while
    Slurm holds the job PENDING), then that it runs, then the end.  Pass:
    GET /jobs/{id} and `tether status` show `pending` with Slurm's reason
    while it waits, nothing once it runs or ended."""
    sec = workspace.register()
    j = workspace.submit({"name": "queued-at-slurm", "command": ["true"]})
    workspace.lease(sec)
    ev = {"seq": 1, "time": 1.0, "type": "started", "pid": 0}
    assert workspace.events(sec, j, 1, [ev])[0] == 200
    pend = {"seq": 2, "time": 1.5, "type": "pending", "pending": True,
            "reason": "Resources"}
    assert workspace.events(sec, j, 1, [pend])[0] == 200
    job = workspace.job(j)
    assert (job["substate"], job["substate_reason"]) == ("pending", "Resources")
    assert job["attempts"][0]["substate"] == "pending", job
    out = tether(workspace, "status", str(j), check=0).stdout
    assert f"job {j} (queued-at-slurm): running (pending: Resources)\n" in out, out
    assert "attempt 1 on node-1: running (pending: Resources)\n" in out, out
    ran = {"seq": 3, "time": 2.0, "type": "pending", "pending": False,
           "reason": None}
    assert workspace.events(sec, j, 1, [ran])[0] == 200
    job = workspace.job(j)
    assert job["substate"] is None and job["substate_reason"] is None, job
    out = tether(workspace, "status", str(j), check=0).stdout
    assert f"job {j} (queued-at-slurm): running\n" in out, out
    assert workspace.events(sec, j, 1, [pend | {"seq": 4}])[0] == 200
    assert workspace.finish(sec, j, 1, seq=5)[0] == 200
    assert workspace.job(j)["substate"] is None
