"""tether-agent doctor on this machine: passes with dockerd, Slurm and a
registered agent; names the missing piece and its fix when dockerd is
unreachable, the state dir is not writable, the CA is wrong, the credential
is missing or revoked.  Exit status 0 only when the node can run jobs."""
import json
import os
import subprocess

import pytest

from harness.common import binary, run, tmpdir
from harness.workspace import Workspace

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="doctor checks root's powers (namespaces, cgroups)")


@pytest.fixture(scope="module")
def ws():
    w = Workspace().start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def node(ws):
    """A registered node: state dir with credentials, and its agent.conf."""
    name = "doctor-node"
    secret = ws.register(name=name)
    base = tmpdir("tether-doctor-")
    state = os.path.join(base, "state")
    os.mkdir(state, 0o700)
    cred = os.path.join(state, "credentials")
    fd = os.open(cred, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"agent_id": name, "secret": secret, "workspace": ws.url,
                   "name": name}, f)
    conf = os.path.join(base, "agent.conf")
    with open(conf, "w") as f:
        f.write("# doctor test\nworkspace = %s\nca_file = %s\nstate_dir = %s\n"
                "job_user = nobody\n" % (ws.url, ws.ca_file, state))
    return {"conf": conf, "state": state, "name": name, "base": base}


def doctor(node, *sets, env=None):
    argv = [binary("tether-agent"), "doctor", "--config", node["conf"]]
    for s in sets:
        argv += ["--set", s]
    r = run(argv, check=False, env=dict(os.environ, **(env or {})), timeout=120)
    lines = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] in ("ok", "info", "warn", "FAIL"):
            lines[parts[1]] = (parts[0], parts[2])
    return r, lines


def test_doctor_passes_on_this_machine(node, docker_engine, slurm_cluster):
    r, lines = doctor(node, "docker_socket=" + docker_engine, env=slurm_cluster.env)
    assert r.returncode == 0, r.stdout + r.stderr
    for check in ("config", "state-dir", "cgroup", "namespaces", "job-user",
                  "docker", "python", "slurm", "workspace", "credential"):
        assert lines.get(check, ("missing",))[0] == "ok", (check, r.stdout)
    assert "TLS certificate verified" in lines["workspace"][1]
    assert "API 1." in lines["docker"][1]
    assert "partitions:" in lines["slurm"][1]
    assert "this node can run jobs" in r.stdout
    # one line per check, each failure or warning with its fix
    for status, text in lines.values():
        if status in ("warn", "FAIL"):
            assert "; fix: " in text, text


def test_doctor_json(node):
    r = run([binary("tether-agent"), "doctor", "--config", node["conf"], "--json"],
            check=False)
    out = json.loads(r.stdout)
    assert out["ok"] == (r.returncode == 0)
    names = [c["check"] for c in out["checks"]]
    for check in ("cgroup", "namespaces", "docker", "python", "git", "conda",
                  "slurm", "gpu", "disk", "state-dir", "clock", "workspace",
                  "credential"):
        assert check in names, (check, names)
    for c in out["checks"]:
        assert c["status"] in ("ok", "info", "warn", "fail")
        assert c["status"] not in ("warn", "fail") or c["fix"], c


def test_doctor_says_what_a_move_into_the_cgroup_costs(node):
    """cgroup v1 (this host): pid 1 is moved into its cgroups, which waits
    for an RCU grace period unless a hierarchy has favordynmods; doctor
    says so (info: nothing is broken) and names the kernel option."""
    with open("/proc/self/mounts") as f:
        mounts = [ln.split() for ln in f]
    v2 = any(m[1] == "/sys/fs/cgroup" and m[2] == "cgroup2" for m in mounts)
    favor = any(m[2] in ("cgroup", "cgroup2") and "favordynmods" in m[3]
                for m in mounts)
    r, lines = doctor(node)
    status, text = lines["cgroup-move"]
    if v2:
        assert status == "ok" and "born in its cgroup" in text, r.stdout
    elif favor:
        assert status == "ok" and "favordynmods" in text, r.stdout
    else:
        assert status == "info", r.stdout
        assert "RCU grace period" in text and "cgroup_favordynmods=true" in text


def test_doctor_names_unreachable_docker(node):
    dead = os.path.join(node["base"], "no-docker.sock")
    r, lines = doctor(node, "docker_socket=" + dead)
    status, text = lines["docker"]
    assert status == "warn", r.stdout
    assert dead in text and "not reachable" in text
    assert "fix: start dockerd" in text
    assert r.returncode == 0, "sandbox jobs can still run: " + r.stdout
    # a node whose default launcher is docker cannot run jobs without it
    r, lines = doctor(node, "docker_socket=" + dead, "default_launcher=docker")
    assert lines["docker"][0] == "FAIL" and r.returncode == 1, r.stdout


def test_doctor_names_unwritable_state_dir(node):
    ro = os.path.join(node["base"], "ro-state")
    os.mkdir(ro, 0o700)
    run(["mount", "--bind", ro, ro])
    try:
        run(["mount", "-o", "remount,bind,ro", ro, ro])
        r, lines = doctor(node, "state_dir=" + ro)
    finally:
        run(["umount", ro], check=False)
    status, text = lines["state-dir"]
    assert status == "FAIL" and "not writable" in text, r.stdout
    assert "Read-only file system" in text and "fix:" in text
    assert r.returncode == 1
    assert "cannot run jobs" in r.stdout


def test_doctor_names_wrong_ca(node):
    other = os.path.join(node["base"], "other-ca")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=not-the-workspace-ca", "-keyout", other + ".key",
         "-out", other + ".pem"])
    r, lines = doctor(node, "ca_file=" + other + ".pem")
    status, text = lines["workspace"]
    assert status == "FAIL", r.stdout
    assert "TLS certificate not trusted with " + other + ".pem" in text
    assert "fix: set ca_file to the CA that signed" in text
    assert r.returncode == 1


def test_doctor_names_missing_and_revoked_credential(ws, node):
    empty = os.path.join(node["base"], "empty-state")
    os.mkdir(empty, 0o700)
    r, lines = doctor(node, "state_dir=" + empty)
    status, text = lines["credential"]
    assert status == "FAIL" and "not registered" in text, r.stdout
    assert "tether-agent" in text and r.returncode == 1
    # with a registration token configured, the first start registers
    r, lines = doctor(node, "state_dir=" + empty, "token=tr_x")
    assert lines["credential"][0] == "warn", r.stdout
    # a revoked agent's secret is rejected
    name = "doctor-revoked"
    secret = ws.register(name=name)
    st = os.path.join(node["base"], "revoked-state")
    os.mkdir(st, 0o700)
    fd = os.open(os.path.join(st, "credentials"), os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"agent_id": name, "secret": secret, "workspace": ws.url}, f)
    r, lines = doctor(node, "state_dir=" + st)
    assert lines["credential"][0] == "ok", r.stdout
    status, _, _ = ws.api("DELETE", "/api/v1/agents/" + name)
    assert status in (200, 204)
    r, lines = doctor(node, "state_dir=" + st)
    status, text = lines["credential"]
    assert status == "FAIL" and "rejected" in text and "register" in text, r.stdout
    assert r.returncode == 1


def test_doctor_credential_mode(node):
    st = os.path.join(node["base"], "loose-state")
    os.mkdir(st, 0o700)
    with open(os.path.join(st, "credentials"), "w") as f:
        json.dump({"agent_id": "x", "secret": "ta_x"}, f)
    os.chmod(os.path.join(st, "credentials"), 0o644)
    r, lines = doctor(node, "state_dir=" + st)
    status, text = lines["credential"]
    assert status == "FAIL" and "0644" in text and "chmod 0600" in text, r.stdout


def test_doctor_usage():
    r = subprocess.run([binary("tether-agent"), "doctor", "--bogus"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr
