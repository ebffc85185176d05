"""tether-agent doctor with an ssh:// workspace (real sshd and workspace on
loopback): host key known, key accepted, workspace reachable through the
tunnel, credential accepted; and the fix named for an unknown host key, a
key the server refuses, and a wrong ssh_remote_port."""
import json
import os

import pytest

from harness.common import binary, free_port, run, tmpdir
from harness.workspace import Workspace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sshd logs in as root")


@pytest.fixture(scope="module")
def ws():
    w = Workspace().start()
    yield w
    w.stop()


def node(ws, sshd):
    base = tmpdir("tether-doctor-ssh-")
    state = os.path.join(base, "state")
    os.mkdir(state, 0o700)
    fd = os.open(os.path.join(state, "credentials"), os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"agent_id": "ssh-node", "secret": ws.register(name="ssh-node-" + base[-6:]),
                   "workspace": sshd.url}, f)
    conf = os.path.join(base, "agent.conf")
    with open(conf, "w") as f:
        f.write("workspace = %s\nssh_known_hosts = %s\nssh_key = %s\n"
                "ssh_remote_port = %d\nstate_dir = %s\njob_user = nobody\n"
                % (sshd.url, sshd.known_hosts(), sshd.keys["ed25519"],
                   ws.plain_port, state))
    return conf, base


def doctor(conf, *sets):
    argv = [binary("tether-agent"), "doctor", "--config", conf]
    for s in sets:
        argv += ["--set", s]
    r = run(argv, check=False, timeout=60)
    lines = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            lines[parts[1]] = (parts[0], parts[2])
    return r, lines


def test_doctor_ssh_workspace(ws, sshd):
    conf, base = node(ws, sshd)
    r, lines = doctor(conf)
    assert lines["workspace"][0] == "ok", r.stdout
    assert "host key known, key accepted" in lines["workspace"][1]
    assert lines["credential"][0] == "ok", r.stdout

    empty = os.path.join(base, "empty_known_hosts")
    open(empty, "w").close()
    r, lines = doctor(conf, "ssh_known_hosts=" + empty)
    status, text = lines["workspace"]
    assert status == "FAIL" and "unknown host key" in text, r.stdout
    assert "fix: add the server's key to ssh_known_hosts (ssh-keyscan" in text
    assert r.returncode == 1

    r, lines = doctor(conf, "ssh_key=" + sshd.keys["stranger"])
    status, text = lines["workspace"]
    assert status == "FAIL" and "authorized_keys" in text, r.stdout

    r, lines = doctor(conf, "ssh_remote_port=%d" % free_port())
    status, text = lines["workspace"]
    assert status == "FAIL" and "fix: set ssh_remote_port" in text, r.stdout
