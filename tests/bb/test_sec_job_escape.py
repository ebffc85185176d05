"""Attacks from inside a job (issue 13, item 10), for the sandbox (a real
agent and workspace, end to end) and for docker (the runner's docker
launcher): the job probes every way out (harness/escape_probe.py).

Pass criterion: NoNewPrivs 1, CapEff 0, not root, only fds 0-2 open; the
agent's credential, agent.db and state dir unreadable; no host unix socket
(Docker's included) reachable; no cgroup file of its own or any other
cgroup, nor any release_agent, openable for writing; the agent's and
another job's processes cannot be signalled (not even seen)."""
import json
import os

import pytest

from harness import dockerd
from harness import runner as hr
from harness.common import wait_until

PROBE = open(os.path.join(os.path.dirname(__file__), "harness",
                          "escape_probe.py")).read()


def find_pids(marker):
    """Host pids whose command line contains marker."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    out.append(int(p))
        except OSError:
            pass
    return out


def probe_of(log):
    for line in log.decode(errors="replace").splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    raise AssertionError("no PROBE line in:\n" + log.decode(errors="replace")[-3000:])


def host_sockets():
    socks = [dockerd.SOCKET]
    for d in ("/run", "/var/run"):
        try:
            for n in os.listdir(d):
                p = os.path.join(d, n)
                if n.endswith(".sock") and os.path.exists(p):
                    socks.append(p)
        except OSError:
            pass
    return sorted(set(socks))


def assert_confined(p, pids):
    assert p["nnp"] == "1", p
    assert int(p["capeff"], 16) == 0 and int(p["capprm"], 16) == 0, p
    assert p["uid"] != 0 and p["euid"] != 0, p
    # 0-2 plus the one listdir() holds open while it reads the directory
    assert len(p["fds"]) == 4 and p["fds"][:3] == ["0", "1", "2"], p["fds"]
    assert p["cred"] is False, p
    # Unlistable, or a mask that shows none of the agent's files.
    seen = set(p["statedir"] or [])
    assert not seen & {"credentials", "agent.db", "agent.db-wal", "jobs"}, seen
    assert p["agentdb"] is False, p
    assert not any(p["socks"].values()), p["socks"]
    assert p["cgroup_writable"] == [], p["cgroup_writable"]
    assert p["cgroup_checked"] > 0 or not os.path.exists("/sys/fs/cgroup/memory")
    for pid in pids:
        assert p["signal"][str(pid)] != "ok", (pid, p["signal"])


def test_sandbox_job_cannot_escape(workspace, agent_factory):
    """Scenario: a sandboxed job (agent + workspace end to end) next to a
    running victim job.  Pass: every probe in the module docstring holds,
    and the victim and the agent are still alive afterwards."""
    ag = agent_factory(max_jobs=2).start()
    victim = workspace.submit(name="victim", command=["sleep", "3001.25"])
    ag.wait_job(victim, "running", timeout=30)
    vpids = wait_until(lambda: find_pids("3001.25"), 15,
                       what="the victim's sleep on the host")
    pids = [ag.pid] + vpids
    env = {"P_CRED": os.path.join(ag.state_dir, "credentials"),
           "P_STATE": ag.state_dir, "P_SOCKS": ":".join(host_sockets()),
           "P_PIDS": ":".join(str(x) for x in pids)}
    job = workspace.submit(name="probe", command=["/usr/bin/python3", "-c", PROBE],
                           env=env)
    ag.wait_job(job, "succeeded", timeout=60)
    assert_confined(probe_of(ag.ws_log(job)), pids)
    assert ag.alive() and all(os.path.exists(f"/proc/{x}") for x in vpids)
    workspace.api("POST", f"/api/v1/jobs/{victim}/cancel")
    ag.wait_job(victim, "cancelled", timeout=30)


def test_docker_job_cannot_escape(docker_base):
    """Scenario: a docker job (the runner's docker launcher, real engine)
    probes the same ways out; the attempt's state dir holds a credential
    file.  Pass: every probe in the module docstring holds."""
    state = hr.state_dir()
    cred = os.path.join(state, "credentials")
    with open(cred, "w") as f:
        f.write('{"secret": "ta_docker_probe_secret"}')
    os.chmod(cred, 0o600)
    # Not pid 1 (the parent when tests/run.sh is a container's init, as in
    # tests/fresh-machine.sh): inside the job's pid namespace 1 is its own.
    pids = [p for p in (os.getpid(), os.getppid()) if p > 1]
    env = {"P_CRED": cred, "P_STATE": state, "P_SOCKS": ":".join(host_sockets()),
           "P_PIDS": ":".join(str(x) for x in pids)}
    d = dockerd.docker_attempt(["python3", "/tether/work/probe.py"],
                               files={"probe.py": PROBE}, job="D-escape",
                               state=state, spec={"env": env})
    r = hr.run_runner(d, timeout=300)
    res = hr.result(d)
    assert res["reason"] == "succeeded", (res, r.stderr, hr.log(d)[-3000:])
    p = probe_of(hr.log(d))
    assert_confined(p, pids)
    assert p["cred"] is False
