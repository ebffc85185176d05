"""A runner killed (-9) while its job runs, and a new runner started on the
same attempt directory (what the agent does for an attempt whose runner died
without result.json): it re-attaches (docker: same container, not restarted)
without a second source or env phase and the log continues byte-exact; a
sandbox job died with its runner, so the attempt ends `lost`, saying why."""
import fcntl
import json
import os
import time

from harness import dockerd
from harness import runner as hr

TICKER = """import os, sys, time
print("START", os.getpid(), flush=True)
for i in range(40):
    sys.stdout.write("line %03d %s" % (i, "x" * (i % 50)))
    sys.stdout.flush()
    time.sleep(0.05)
    sys.stdout.write("\\n")
    sys.stdout.flush()
    time.sleep(0.05)
"""


def _locked(path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _phase_events(d, phase, state):
    return [e for e in hr.events(d) if e["type"] == "phase" and
            e["phase"] == phase and e["state"] == state]


def test_docker_runner_kill9_reattaches_without_source_env(docker_base):
    d = dockerd.docker_attempt(["python3", "/tether/work/ticker.py"],
                               files={"ticker.py": TICKER}, job="D-ra")
    p = hr.start_runner(d)
    hr.wait_until(lambda: b"line 008" in hr.log(d), 90, what="line 8")
    cid = dockerd.container_of(d)
    p.kill9()
    before = hr.log(d)
    seq_before = len(hr.events(d))
    time.sleep(0.5)  # the job prints on with no runner attached
    p2 = hr.start_runner(d)
    hr.wait_until(lambda: hr.state(d)["runner_pid"] == p2.p.pid, 30,
                  what="the new runner")
    # it holds the environment in use again (eviction must leave it)
    key = [e for e in hr.events(d) if e["type"] == "phase" and
           e["phase"] == "env" and e["state"] == "end"][0]["env_key"]
    state = os.path.dirname(os.path.dirname(os.path.dirname(d)))
    use = os.path.join(state, "envs", ".locks", key + ".use")
    hr.wait_until(lambda: _locked(use), 10, what="the env's use lock")
    res = hr.wait_result(d, 60)
    assert p2.stop() == 0
    assert res["reason"] == "succeeded", res
    assert hr.state(d)["launcher_ref"] == cid
    assert dockerd.containers("tether.dir=" + d) == []
    log = hr.log(d)
    assert log.startswith(before), "what the first runner wrote changed"
    text = log.decode()
    assert text.count("START ") == 1, "job restarted"
    job = text[text.index("START "):]
    expect = "".join("line %03d %s\n" % (i, "x" * (i % 50))
                     for i in range(40))
    assert job.split("\n", 1)[1] == expect, "log not byte-exact"
    # one source and one env phase, run started once, seq continued
    for ph in ("source", "env"):
        assert len(_phase_events(d, ph, "start")) == 1, ph
        assert len(_phase_events(d, ph, "end")) == 1, ph
    assert len(_phase_events(d, "run", "start")) == 1
    assert len(_phase_events(d, "run", "end")) == 1
    assert [e["type"] for e in hr.events(d)].count("started") == 1
    evs = hr.events(d)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert len(evs) > seq_before
    # the run phase counts from the job's start, not from the re-attach
    assert res["durations"]["run"] >= 3.5, res["durations"]
    assert res["durations"]["env"] > 0, res["durations"]


def test_sandbox_runner_kill9_ends_lost():
    d = hr.make_attempt(["/bin/sh", "-c",
                         "echo begin; i=0; while [ $i -lt 600 ]; do "
                         "i=$((i+1)); sleep 0.1; done; echo end"],
                        job="S-ra")
    p = hr.start_runner(d)
    pid = hr.wait_started(d)
    hr.wait_until(lambda: b"begin" in hr.log(d), 30, what="begin")
    cgroup = hr.state(d)["cgroup"]
    p.kill9()
    before = hr.log(d)
    p2 = hr.start_runner(d)
    res = hr.wait_result(d, 30)
    assert p2.stop() == 0
    assert res["reason"] == "lost", res
    assert "re-attach" in res["message"], res
    assert "sandbox" in res["message"], res
    log = hr.log(d)
    assert log.startswith(before)
    assert log.count(b"begin") == 1, "the job ran again"
    assert not hr.pids_alive([pid])
    assert len(_phase_events(d, "source", "start")) == 1
    assert [e["type"] for e in hr.events(d)].count("started") == 1
    assert cgroup and not os.path.exists("/sys/fs/cgroup/pids/" + cgroup), \
        "cgroup left behind"


def test_runner_killed_before_run_phase_starts_afresh():
    """No launcher_ref and phase source: nothing ran; the new runner does the
    attempt from the start (one job run)."""
    d = hr.make_attempt(["/bin/sh", "-c", "echo once"], job="F-ra")
    st = {"runner_pid": 1, "runner_start": 1, "job_pid": 0,
          "phase": "source", "launcher": "sandbox", "launcher_ref": "",
          "cgroup": ""}
    with open(os.path.join(d, "state.json"), "w") as f:
        json.dump(st, f)
    r = hr.run_runner(d, 60)
    assert r.returncode == 0, r.stderr
    assert hr.result(d)["reason"] == "succeeded"
    assert hr.log(d).count(b"once") == 1

