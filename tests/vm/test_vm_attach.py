"""`tether attach ssh://root@guest` from the host to a Debian 12 guest with
its own kernel and systemd (docs/ssh.md): it installs and registers the
agent as tether-agent.service, a job runs there, a second attach is refused
(exit 6), --replace takes over."""
import os
import subprocess

from conftest import HOST_FROM_GUEST, job_log, wait_job
from harness.common import BUILD_DIR, SOURCE_DIR, binary, tmpdir


def attach(ws, guest, known_hosts, *extra):
    argv = [binary("tether"), "--workspace", ws.url, "--token",
            ws.admin_token, "--ca", ws.ca_file, "attach",
            "ssh://root@127.0.0.1:%d" % guest.port,
            "--key", guest.image.ssh_key, "--known-hosts", known_hosts,
            # The guest reaches the workspace at the host's address on
            # qemu's user network, not at the CLI's 127.0.0.1.
            "--agent-workspace", "https://%s:%d" % (HOST_FROM_GUEST, ws.port),
            "--from", BUILD_DIR, "--installer",
            os.path.join(SOURCE_DIR, "install", "install.sh"),
            "--timeout", "240s", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=480)


def agents(ws):
    return ws.api("GET", "/api/v1/agents")[2]["agents"]


def online(ws, name):
    return [a for a in agents(ws) if a["name"] == name
            and a["state"] == "online"]


def test_attach_installs_registers_refuses_twice_replace(guest, workspace):
    ws = workspace
    known_hosts = os.path.join(tmpdir("tether-vm-kh-"), "known_hosts")
    r = subprocess.run(["ssh-keyscan", "-p", str(guest.port), "-t",
                        "ed25519", "127.0.0.1"], capture_output=True,
                       text=True, timeout=60)
    assert r.stdout.strip(), r.stderr
    with open(known_hosts, "w") as f:
        f.write(r.stdout)

    r = attach(ws, guest, known_hosts, "--name", "vm-b")
    assert r.returncode == 0, r.stdout + r.stderr
    assert online(ws, "vm-b"), agents(ws)
    show = guest.sh("systemctl show tether-agent -p ActiveState -p "
                    "Delegate -p KillMode").stdout
    assert "ActiveState=active" in show and "Delegate=yes" in show, show

    jid = ws.submit({"name": "far", "command": [
        "/bin/sh", "-c", "echo ran on $(uname -r) $(stat -fc %T "
        "/sys/fs/cgroup)"], "resources": {"cpus": 1, "memory": "128M"}})
    j = wait_job(ws, jid)
    assert j["state"] == "succeeded", (j, job_log(ws, jid))
    assert j["attempts"][-1]["agent"] == "vm-b"
    assert "cgroup2fs" in job_log(ws, jid)

    n_agents = len(agents(ws))
    r = attach(ws, guest, known_hosts, "--name", "vm-c")
    assert r.returncode == 6, r.stdout + r.stderr
    assert "already attached" in r.stderr
    assert len(agents(ws)) == n_agents and online(ws, "vm-b")

    first = online(ws, "vm-b")[0]["id"]
    r = attach(ws, guest, known_hosts, "--name", "vm-c", "--replace")
    assert r.returncode == 0, r.stdout + r.stderr
    assert online(ws, "vm-c")
    assert [a["state"] for a in agents(ws) if a["id"] == first] == \
        ["revoked"]
    jid = ws.submit({"name": "again", "command": ["true"]})
    j = wait_job(ws, jid)
    assert j["state"] == "succeeded", (j, agents(ws))
    assert j["attempts"][-1]["agent"] == "vm-c"
