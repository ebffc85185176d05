"""`tether attach ssh://...` against a real sshd and the real workspace.

The machine being attached is a fresh Debian root (harness/baseimage.py's
cached debootstrap, with Tether's runtime libraries) that sshd chroots the
session into: it has its own filesystem and /etc/machine-id, so install.sh
really installs there and the agent it starts registers with the workspace
(the root shares the host's network, so 127.0.0.1 reaches the workspace)."""
import os
import shutil
import signal
import subprocess
import uuid

import pytest

from harness.common import BUILD_DIR, SOURCE_DIR, binary, run, wait_until
from harness.sshd import Sshd

ROOTS = "/var/lib/tether-test/attach-roots"  # root-owned path, as sshd wants


def tether(ws, *args, timeout=180):
    argv = [binary("tether"), "--workspace", ws.url, "--token",
            ws.admin_token, "--ca", ws.ca_file, *args]
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout,
                          env=dict(os.environ, TETHER_SOURCE_DIR=SOURCE_DIR))


def attach_args(sshd, *extra, key="ed25519", known_hosts=None):
    return ["attach", sshd.url, "--key", sshd.keys[key],
            "--known-hosts", known_hosts or sshd.known_hosts(),
            "--from", BUILD_DIR, "--installer",
            os.path.join(SOURCE_DIR, "install", "install.sh"),
            "--timeout", "60s", *extra]


def tokens(ws):
    st, _, body = ws.api("GET", "/api/v1/tokens")
    assert st == 200, body
    return body["tokens"]


def agents(ws):
    st, _, body = ws.api("GET", "/api/v1/agents")
    assert st == 200, body
    return body["agents"]


def test_attach_refuses_unknown_host_key_before_anything(workspace, sshd):
    empty = os.path.join(sshd.dir, "empty_known_hosts")
    open(empty, "w").close()
    before = tokens(workspace)
    r = tether(workspace, *attach_args(sshd, known_hosts=empty))
    assert r.returncode == 4, r.stdout + r.stderr  # EXIT_AUTH
    assert "unknown host key " + sshd.fingerprint() in r.stderr
    assert sshd.auth_attempts() == []       # no authentication attempted
    assert tokens(workspace) == before      # no registration token made
    assert agents(workspace) == []


def test_attach_with_wrong_key_is_a_clear_auth_error(workspace, sshd):
    before = tokens(workspace)
    r = tether(workspace, *attach_args(sshd, key="stranger"))
    assert r.returncode == 4, r.stdout + r.stderr
    assert "authentication refused" in r.stderr
    assert tokens(workspace) == before


@pytest.fixture
def machine():
    """A fresh Debian root with its own machine id and /proc, served by an
    sshd that chroots sessions into it; the agent started there is killed
    and the root removed at the end."""
    from harness import baseimage
    from harness.freshroot import RUNTIME_PACKAGES
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap not installed: run install/deps.sh")
    tarball = baseimage.ensure_rootfs_tarball(include=RUNTIME_PACKAGES)
    os.makedirs(ROOTS, mode=0o755, exist_ok=True)
    base = os.path.join(ROOTS, uuid.uuid4().hex[:12])
    root = os.path.join(base, "root")
    os.makedirs(root, mode=0o755)
    os.chmod(base, 0o755)
    mounted = False
    s = None
    try:
        run(["tar", "-C", root, "--numeric-owner", "-xf", tarball],
            timeout=300)
        os.chmod(root, 0o755)
        with open(os.path.join(root, "etc/machine-id"), "w") as f:
            f.write(uuid.uuid4().hex + "\n")
        run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")])
        mounted = True
        s = Sshd(chroot=root).start()
        s.root = root
        yield s
    finally:
        if s is not None:
            s.stop()
        _kill_agents(root)
        if mounted:
            run(["umount", "-l", os.path.join(root, "proc")], check=False)
        shutil.rmtree(base, ignore_errors=True)


def _kill_agents(root):
    """Kill every process whose executable lives in root."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe.startswith(root + "/"):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def online(ws, name):
    return [a for a in agents(ws) if a["name"] == name
            and a["state"] == "online"]


def test_attach_installs_registers_refuses_second_and_replace_takes_over(
        workspace, machine):
    r = tether(workspace, *attach_args(machine, "--name", "far-node"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "attached " in r.stdout
    first = online(workspace, "far-node")
    assert len(first) == 1, agents(workspace)
    cred = os.path.join(machine.root, "var/lib/tether/credentials")
    assert os.path.exists(cred)
    assert os.path.exists(os.path.join(machine.root,
                                       "usr/local/bin/tether-agent"))
    # The one-use token was used up; no temporary directory left there.
    assert all(t["uses_left"] == 0 for t in tokens(workspace))
    assert not [n for n in os.listdir(os.path.join(machine.root, "tmp"))
                if n.startswith("tether-attach.")]

    # A second attachment of the same machine is refused, and harms nothing.
    n_tokens = len(tokens(workspace))
    r = tether(workspace, *attach_args(machine, "--name", "far-node-2"))
    assert r.returncode == 6, r.stdout + r.stderr  # EXIT_REJECTED
    assert "already attached" in r.stderr and "--replace" in r.stderr
    assert first[0]["id"] in r.stderr
    assert len(tokens(workspace)) == n_tokens
    assert online(workspace, "far-node") and not online(workspace, "far-node-2")

    # Without a credential or a running agent there, the workspace still
    # knows the machine by its machine id: still refused.
    _kill_agents(machine.root)
    for f in ("var/lib/tether/credentials", "run/tether-agent.pid"):
        if os.path.exists(os.path.join(machine.root, f)):
            os.unlink(os.path.join(machine.root, f))
    r = tether(workspace, *attach_args(machine, "--name", "far-node-2"))
    assert r.returncode == 6, r.stdout + r.stderr
    assert "with its machine id" in r.stderr and first[0]["id"] in r.stderr

    # A name another machine's agent has is refused, --replace or not.
    workspace.register(name="elsewhere", machine_id="not-this-machine")
    r = tether(workspace, *attach_args(machine, "--name", "elsewhere",
                                       "--replace"))
    assert r.returncode == 6, r.stdout + r.stderr
    assert "the name elsewhere is taken" in r.stderr

    # --replace takes over cleanly: the old agent is revoked, one new agent.
    r = tether(workspace, *attach_args(machine, "--name", "far-node-2",
                                       "--replace"))
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: online(workspace, "far-node-2"), 30,
               what="the replacing agent")
    old = [a for a in agents(workspace) if a["id"] == first[0]["id"]]
    assert old and old[0]["state"] == "revoked", old
    assert not online(workspace, "far-node")
