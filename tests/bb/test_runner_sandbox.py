"""tether-runner's sandbox launcher: what a job can and cannot do (issue 5,
first acceptance line).  Each test runs `tether-runner run DIR` on a fresh
attempt directory and inspects the job's log and result.json."""
import json
import os
import shutil
import tempfile

import pytest

from harness import runner as R

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

PROBE = r"""
import json, os
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
def can_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
def can_read(path):
    try:
        open(path).read()
        return True
    except OSError:
        return False
out = {
    "nnp": status("NoNewPrivs"), "capeff": status("CapEff"),
    "capbnd": status("CapBnd"), "capprm": status("CapPrm"),
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
    "groups": os.getgroups(),
    "fds": sorted(os.listdir("/proc/self/fd")),
    "env": dict(os.environ), "cwd": os.getcwd(), "pid1": open("/proc/1/comm").read().strip(),
    "cred": can_read(os.environ["CRED"]), "statedir": os.path.exists(os.environ["ATTEMPT"]),
    "writes": {p: can_write(p) for p in os.environ["WRITES"].split(":")},
    "procs": sorted(int(x) for x in os.listdir("/proc") if x.isdigit()),
    "hostname": os.uname().nodename,
    "ipc": os.readlink("/proc/self/ns/ipc"),
}
print("PROBE " + json.dumps(out))
"""

OK_DIRS = ["/tether/work/w", "/tether/outputs/o", "/tether/checkpoints/c", "/tmp/t",
           "/dev/shm/s"]
BAD_DIRS = ["/x", "/etc/tether-x", "/usr/x", "/var/tmp/x", "/tether/x", "/root/x",
            "/home/x", "/proc/x"]


def probe(d):
    line = [ln for ln in R.log(d).decode().splitlines() if ln.startswith("PROBE ")]
    assert line, R.log(d).decode()
    return json.loads(line[0][6:])


def test_job_is_confined():
    state = R.state_dir()
    cred = os.path.join(state, "credentials")
    with open(cred, "w") as f:
        f.write('{"secret": "ta_agent_secret"}')
    os.chmod(cred, 0o600)
    d = R.make_attempt(["/usr/bin/python3", "-c", PROBE], state=state,
                       env={"CRED": cred, "ATTEMPT": d_attempt(state),
                            "WRITES": ":".join(OK_DIRS + BAD_DIRS)})
    p = R.run_runner(d)
    assert p.returncode == 0, p.stderr
    res = R.result(d)
    assert res["reason"] == "succeeded", R.log(d)
    out = probe(d)
    user = R.ensure_job_user()
    assert out["nnp"] == "1"
    assert int(out["capeff"], 16) == 0
    assert int(out["capprm"], 16) == 0
    assert int(out["capbnd"], 16) == 0
    assert out["uid"] == out["euid"] == user.pw_uid
    assert out["gid"] == user.pw_gid and out["groups"] in ([], [user.pw_gid])
    # 0-2 plus the fd listdir() itself holds open
    assert len(out["fds"]) == 4 and out["fds"][:3] == ["0", "1", "2"], out["fds"]
    assert out["cred"] is False and out["statedir"] is False
    for p in OK_DIRS:
        assert out["writes"][p] is True, p
    for p in BAD_DIRS:
        assert out["writes"][p] is False, p
    assert out["cwd"] == "/tether/work"
    assert out["pid1"] == "tether-runner"
    # own pid namespace: the reaper (1), the job (2), nothing of the host
    assert out["procs"] == [1, 2], out["procs"]
    assert out["hostname"] == "tether-42"
    assert out["ipc"] != os.readlink("/proc/self/ns/ipc")


def d_attempt(state, job="42", attempt=1):
    return os.path.join(state, "jobs", job, str(attempt))


def test_clean_environment():
    d = R.make_attempt(["/usr/bin/env"], env={"MY_VAR": "v1"},
                       secrets={"API_TOKEN": "tok-123456"})
    p = R.run_runner(d)
    assert p.returncode == 0, p.stderr
    lines = R.log(d).decode().splitlines()
    env = dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("["))
    assert env.pop("MY_VAR") == "v1"
    assert env.pop("API_TOKEN") == "***"  # in the env, masked in the log
    assert env.pop("PATH").split(":")[:4] == ["/usr/local/sbin", "/usr/local/bin",
                                               "/usr/sbin", "/usr/bin"]
    assert env.pop("TETHER_JOB_ID") == "42"
    assert env.pop("TETHER_ATTEMPT") == "1"
    assert env.pop("TETHER_OUTPUTS") == "/tether/outputs"
    assert env.pop("TETHER_CHECKPOINTS") == "/tether/checkpoints"
    assert env.pop("TETHER_WORK") == "/tether/work"
    assert env.pop("HOME") == "/tmp"
    assert env == {}, env


def test_gpu_variables_when_assigned():
    d = R.make_attempt(["/bin/sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES"],
                       runner={"gpus": [1, 3]})
    R.run_runner(d)
    assert b"CVD=1,3\n" in R.log(d)


def test_python_is_debians():
    d = R.make_attempt(["/bin/sh", "-c", "command -v python3"])
    R.run_runner(d)
    assert b"/usr/bin/python3\n" in R.log(d)


def test_disallowed_mount_refused_before_start():
    marker = tempfile.mkdtemp(prefix="tether-marker-")
    flag = os.path.join(marker, "ran")
    d = R.make_attempt(["/bin/sh", "-c", f"touch {flag}"],
                       mounts=[{"source": "/etc", "target": "/data"}],
                       runner={"allowed_mounts": [{"source": "/usr/share",
                                                   "readonly": True}]})
    p = R.run_runner(d)
    assert p.returncode == 0, p.stderr
    res = R.result(d)
    assert res["reason"] == "launch_failed"
    assert "mount /etc is not allowed" in res["message"]
    assert b"mount /etc is not allowed" in R.log(d)
    assert not any(ev["type"] == "started" for ev in R.events(d))
    assert not os.path.exists(flag)
    shutil.rmtree(marker)


def test_allowed_mounts_ro_and_rw():
    data = tempfile.mkdtemp(prefix="tether-data-", dir="/var/tmp")
    os.chmod(data, 0o777)
    with open(os.path.join(data, "in.txt"), "w") as f:
        f.write("dataset")
    os.mkdir(os.path.join(data, "rw"))
    os.chmod(os.path.join(data, "rw"), 0o777)
    script = ("cat /data/in.txt; echo; (echo x > /data/new) 2>/dev/null || echo RO-OK; "
              "echo y > /scratch/out && echo RW-OK")
    d = R.make_attempt(["/bin/sh", "-c", script],
                       mounts=[{"source": data, "target": "/data"},
                               {"source": os.path.join(data, "rw"), "target": "/scratch",
                                "readonly": False}],
                       runner={"allowed_mounts": [{"source": data, "readonly": False}]})
    p = R.run_runner(d)
    assert R.result(d)["reason"] == "succeeded", (p.stderr, R.log(d))
    text = R.log(d).decode()
    assert "dataset" in text and "RO-OK" in text and "RW-OK" in text
    assert os.path.exists(os.path.join(data, "rw", "out"))
    assert not os.path.exists(os.path.join(data, "new"))
    shutil.rmtree(data)


def test_network_none():
    script = ("import socket\n"
              "s=socket.socket(); s.settimeout(2)\n"
              "try:\n s.connect(('1.1.1.1', 53)); print('NET-OPEN')\n"
              "except OSError as e: print('NET-CLOSED', e.errno)\n"
              "print(open('/sys/class/net/lo/operstate').read().strip())\n")
    d = R.make_attempt(["/usr/bin/python3", "-c", script], network="none")
    R.run_runner(d)
    text = R.log(d).decode()
    assert "NET-CLOSED" in text, text


def test_command_not_found_fails_127():
    d = R.make_attempt(["no-such-program-xyz"])
    R.run_runner(d)
    res = R.result(d)
    assert res["reason"] == "failed" and res["exit_code"] == 127
    assert b"exec 'no-such-program-xyz'" in R.log(d)


def test_events_state_and_result():
    d = R.make_attempt(["/bin/sh", "-c", "echo out; exit 3"])
    p = R.run_runner(d)
    assert p.returncode == 0, p.stderr
    evs = R.events(d)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    kinds = [(e["type"], e.get("phase"), e.get("state")) for e in evs]
    assert kinds == [("phase", "source", "start"), ("phase", "source", "end"),
                     ("phase", "env", "start"), ("phase", "env", "end"),
                     ("phase", "run", "start"), ("started", None, None),
                     ("phase", "run", "end"), ("phase", "outputs", "start"),
                     ("phase", "outputs", "end"), ("final", None, None)]
    res = R.result(d)
    assert res["reason"] == "failed" and res["exit_code"] == 3 and res["signal"] is None
    assert res["seq"] == evs[-1]["seq"]
    assert set(res["durations"]) == {"source", "env", "run", "outputs"}
    assert res["cpu_seconds"] >= 0 and res["peak_memory_bytes"] > 0
    st = R.state(d)
    assert st["phase"] == "done" and st["launcher"] == "sandbox"
    assert st["runner_pid"] > 0 and st["runner_start"] > 0 and st["job_pid"] > 0
    assert st["cgroup"] == R.cgroup_parent(os.path.dirname(os.path.dirname(
        os.path.dirname(d)))) + "/42_1"
    assert not os.path.exists("/sys/fs/cgroup/pids/" + st["cgroup"])
    # a second run of a finished attempt changes nothing
    R.run_runner(d)
    assert len(R.events(d)) == len(evs)


def test_bad_spec_gives_launch_failed_result():
    d = R.make_attempt(["true"])
    with open(os.path.join(d, "spec.json"), "w") as f:
        f.write('{"job": "42", "attempt": 1, "spec": {"name": "x"}}')
    R.run_runner(d)
    res = R.result(d)
    assert res["reason"] == "launch_failed" and "command" in res["message"]
