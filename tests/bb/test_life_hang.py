"""Hang detection and progress (docs/checkpointing.md): a job silent for
longer than hang_timeout ends `hung` (log says why), one that keeps
reporting progress is never flagged, one that prints but makes no progress
is; the last progress value is in the status.  A timeout with
checkpoint.on_timeout records the checkpoint."""
import os
import subprocess

from harness.common import binary
from harness.life import attempt, events


def run_to_end(workspace, agent, **spec):
    job = workspace.submit(**spec)
    return job, agent.wait_job(job, timeout=30)


def first(evs, kind):
    return [e for e in evs if e["type"] == kind][0]


def test_silent_job_ends_hung_within_timeout_plus_2s(workspace, agent):
    job, j = run_to_end(workspace, agent, name="silent",
                        command=["sh", "-c", "echo hello; sleep 60"],
                        hang_timeout="2s")
    assert j["state"] == "hung", j
    evs = events(workspace, job, 1)
    took = first(evs, "final")["time"] - first(evs, "started")["time"]
    assert 2.0 <= took <= 4.0, took
    log = agent.ws_log(job).decode()
    assert "hung: no output for" in log and "hang_timeout 2.0s" in log, log


def test_job_printing_progress_is_never_flagged(workspace, agent):
    job, j = run_to_end(
        workspace, agent, name="steady",
        command=["sh", "-c", "for i in $(seq 1 12); do "
                 "echo \"TETHER_PROGRESS step=$i\"; sleep 0.5; done"],
        hang_timeout="2s")
    assert j["state"] == "succeeded", j
    assert attempt(workspace, job, 1)["progress"] == 12
    evs = events(workspace, job, 1)
    values = [e["value"] for e in evs if e["type"] == "progress"]
    assert values and values == sorted(values) and values[-1] == 12, values
    assert first(evs, "final")["progress"] == 12
    # `tether status` shows it
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(TETHER_WORKSPACE=workspace.url, TETHER_CA=workspace.ca_file,
               TETHER_TOKEN=workspace.admin_token)
    out = subprocess.run([binary("tether"), "status", str(job)], env=env,
                         capture_output=True, text=True, timeout=30).stdout
    assert "progress     12" in out, out


def test_output_without_progress_ends_hung(workspace, agent):
    job, j = run_to_end(
        workspace, agent, name="spinning",
        command=["sh", "-c", "echo 'TETHER_PROGRESS step=7'; "
                 "while :; do echo busy; sleep 0.2; done"],
        hang_timeout="2s")
    assert j["state"] == "hung", j
    evs = events(workspace, job, 1)
    took = first(evs, "final")["time"] - first(evs, "started")["time"]
    assert took <= 4.0, took
    assert attempt(workspace, job, 1)["progress"] == 7
    assert "no new TETHER_PROGRESS value" in agent.ws_log(job).decode()


def test_timeout_with_checkpoint_on_timeout_records_it(workspace, agent):
    job, j = run_to_end(
        workspace, agent, name="ckpt-timeout",
        command=["sh", "-c", "trap 'echo saved > $TETHER_CHECKPOINTS/s; "
                 "exit 0' TERM; echo up; while :; do sleep 0.1; done"],
        timeout="2s", checkpoint={"on_timeout": True, "grace": "2s"})
    assert j["state"] == "timed_out", j
    a1 = attempt(workspace, job, 1)
    assert a1["checkpoint"] and a1["checkpoint"]["size"] > 0, a1
    assert j["checkpoint"]["attempt"] == 1
