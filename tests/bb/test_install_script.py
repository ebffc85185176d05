"""install/install.sh and install/uninstall.sh in a fresh Debian 12 root
(debootstrap minbase, entered with chroot; systemd installed, not running):
files, the job user, permissions, the unit, idempotence, registration, and
an uninstall that leaves nothing behind but what --purge removes."""
import os
import shutil
import stat

import pytest

from harness.common import BUILD_DIR, binary, run
from harness.freshroot import FreshRoot, diff_snapshots, install_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, useradd)")


@pytest.fixture(scope="module")
def root():
    binary("tether-agent")  # fail early with the build hint
    r = FreshRoot()
    yield r
    r.remove()


def install(root, *args, check=True):
    return run(["bash", install_script(), "--root", root.path,
                "--build-dir", BUILD_DIR] + list(args), check=check)


def uninstall(root, *args, check=True):
    drain = [] if "--drain-timeout" in args else ["--no-drain"]
    return run(["bash", install_script("uninstall.sh"), "--root", root.path]
               + drain + list(args), check=check)


def mode(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def unit_settings(path):
    """The unit's key=value lines (last one wins, as in systemd)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def test_install_then_uninstall_leaves_nothing(root):
    before = root.snapshot()
    r = install(root)
    # binaries
    # tether too: install.sh finds it in the build dir (cli/ since issue 21).
    for b in ("tether-agent", "tether-runner", "tether-runner-full", "tether"):
        path = root.p("usr/local/bin/" + b)
        assert mode(path) == (0o755, 0, 0), b
    # the job user: system, no login, no home
    pw = root.passwd("tether-job")
    assert pw is not None, "tether-job not created"
    assert 0 < int(pw[2]) < 1000, pw
    assert pw[6] in ("/usr/sbin/nologin", "/bin/false"), pw
    assert not os.path.exists(root.p(pw[5])) or pw[5] == "/nonexistent"
    assert root.group("tether-job"), "no tether-job group"
    # state dir 0700 root, config 0600 and commented
    assert mode(root.p("var/lib/tether")) == (0o700, 0, 0)
    conf = root.p("etc/tether/agent.conf")
    assert mode(conf) == (0o600, 0, 0)
    with open(conf) as f:
        text = f.read()
    assert text.lstrip().startswith("#"), "agent.conf is not the commented sample"
    # the unit, pointing at the installed binary
    unit = root.p("etc/systemd/system/tether-agent.service")
    s = unit_settings(unit)
    assert s["ExecStart"].startswith("/usr/local/bin/tether-agent "), s
    assert s["KillMode"] == "process"
    assert s["Delegate"] == "yes"
    assert s["Restart"] == "on-failure"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    v = root.verify_unit("/etc/systemd/system/tether-agent.service")
    assert v.returncode == 0, v.stdout + v.stderr
    # no systemd running in the root: says how to start the agent
    assert "systemd is not running" in r.stdout
    assert "tether-agent run --config /etc/tether/agent.conf" in r.stdout

    # uninstall: the binaries and the unit go; config, state, user stay
    uninstall(root)
    for rel in ("usr/local/bin/tether-agent", "usr/local/bin/tether-runner",
                "usr/local/bin/tether-runner-full",
                "etc/systemd/system/tether-agent.service", "usr/local/share/tether"):
        assert not os.path.exists(root.p(rel)), rel
    assert os.path.exists(conf)
    assert os.path.isdir(root.p("var/lib/tether"))
    assert root.passwd("tether-job")
    # --purge: nothing left at all
    uninstall(root, "--purge")
    after = root.snapshot()
    assert after == before, diff_snapshots(before, after)


def test_install_is_idempotent_and_keeps_the_config(root):
    install(root)
    conf = root.p("etc/tether/agent.conf")
    with open(conf, "a") as f:
        f.write("max_jobs = 3\n")
    uid = root.passwd("tether-job")[2]
    r = install(root)
    assert "kept the existing /etc/tether/agent.conf" in r.stdout
    with open(conf) as f:
        assert "max_jobs = 3\n" in f.read()
    assert root.passwd("tether-job")[2] == uid
    with open(root.p("etc/passwd")) as f:
        assert sum(1 for line in f if line.startswith("tether-job:")) == 1
    assert mode(root.p("var/lib/tether")) == (0o700, 0, 0)
    # a state dir loosened by hand is tightened again
    os.chmod(root.p("var/lib/tether"), 0o755)
    install(root)
    assert mode(root.p("var/lib/tether")) == (0o700, 0, 0)
    uninstall(root, "--purge")


def test_install_registration_settings(root):
    """--workspace/--token: the settings land in agent.conf (0600, since it
    then holds a token) when the agent registers on its first start."""
    r = install(root, "--workspace", "https://ws.example:8443", "--token",
                "tr_secret", "--name", "node-7", "--labels", "gpu,a100",
                "--ca", "/etc/tether/ca.pem")
    conf = root.p("etc/tether/agent.conf")
    with open(conf) as f:
        lines = [line.strip() for line in f]
    assert "workspace = https://ws.example:8443" in lines
    assert "name = node-7" in lines
    assert "labels = gpu,a100" in lines
    assert "ca_file = /etc/tether/ca.pem" in lines
    if "registered with" not in r.stdout:
        assert "token = tr_secret" in lines
    assert mode(conf) == (0o600, 0, 0)
    # the same keys again replace, not duplicate
    install(root, "--workspace", "https://ws2.example", "--token", "tr_2")
    with open(conf) as f:
        lines = [line.strip() for line in f]
    assert sum(1 for line in lines if line.startswith("workspace =")) == 1
    assert "workspace = https://ws2.example" in lines
    uninstall(root, "--purge")
    assert not os.path.exists(conf)


def test_install_refuses_bad_usage(root):
    r = install(root, "--bogus", check=False)
    assert r.returncode != 0 and "unknown option '--bogus'" in r.stderr
    r = install(root, "--workspace", "https://x", check=False)
    assert r.returncode != 0 and "--token" in r.stderr
    r = run(["bash", install_script(), "--root", root.path, "--build-dir",
             "/nonexistent"], check=False)
    assert r.returncode != 0 and "no tether-agent" in r.stderr


def test_install_registers_and_starts_without_systemd(root, workspace):
    """--workspace/--token/--start in a root without systemd: the agent
    starts in the background, registers (credential 0600 in the 0700 state
    dir), and uninstall drains and stops it."""
    os.makedirs(root.p("etc/tether"), exist_ok=True)
    shutil.copy(workspace.ca_file, root.p("etc/tether/ca.pem"))
    run(["mount", "-t", "proc", "proc", root.p("proc")])
    try:
        r = install(root, "--workspace", workspace.url, "--token", workspace.token(),
                    "--name", "fresh-node", "--ca", "/etc/tether/ca.pem", "--start")
        assert "agent started in the background" in r.stdout, r.stdout
        assert "registered with " + workspace.url in r.stdout, r.stdout + _log(root)
        cred = root.p("var/lib/tether/credentials")
        assert mode(cred) == (0o600, 0, 0)
        assert mode(root.p("var/lib/tether")) == (0o700, 0, 0)
        st, _, agents = workspace.api("GET", "/api/v1/agents")
        assert [a for a in agents["agents"] if a["name"] == "fresh-node"]
        with open(root.p("run/tether-agent.pid")) as f:
            pid = int(f.read())
        assert os.readlink(f"/proc/{pid}/exe") == root.p("usr/local/bin/tether-agent")
        r = uninstall(root, "--purge", "--drain-timeout", "60")
        assert not _running(pid), "agent still running after uninstall"
        assert not os.path.exists(root.p("var/lib/tether"))
    finally:
        run(["umount", "-l", root.p("proc")], check=False)


def _log(root):
    try:
        with open(root.p("var/log/tether-agent.log")) as f:
            return f.read()[-3000:]
    except OSError:
        return ""


def _running(pid):
    """True while pid is a live process (a zombie awaiting init is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
