"""`tether attach` to a second host: a container started from the test base
image (harness/baseimage.py, with openssh-server and Tether's runtime
libraries), with its own filesystem, address and machine id, running sshd.
The agent installed there registers with the workspace and runs a job; a
second attach is refused; --replace takes over.

The workspace's TLS port listens on all addresses; inside the container a
socat relay puts it on the container's 127.0.0.1 (the workspace's
certificate names 127.0.0.1), so the agent uses https://127.0.0.1:8443."""
import json
import os
import subprocess
import uuid

import pytest

from harness.common import BUILD_DIR, SOURCE_DIR, binary, tmpdir, wait_port, \
    wait_until
from harness.sshd import fingerprint_of, keygen
from harness.workspace import Workspace

TAG = "tether-test-sshnode:bookworm"
RELAY_PORT = 8443

BOOT = """set -e
cat /proc/sys/kernel/random/uuid | tr -d - > /etc/machine-id
# the agent's sandbox makes cgroups: mount the container's own (private
# cgroup namespace) hierarchies read-write in place of docker's read-only ones
for d in /sys/fs/cgroup/*; do
  n=${{d##*/}}; [ -L "$d" ] && continue
  umount "$d" 2>/dev/null || :
  case $n in
  unified) mount -t cgroup2 none "$d" || : ;;
  systemd) mount -t cgroup -o none,name=systemd cgroup "$d" || : ;;
  *) mount -t cgroup -o "$n" cgroup "$d" || : ;;
  esac
done
mkdir -p /run/sshd /root/.ssh
install -m 0600 /keys/authorized_keys /root/.ssh/authorized_keys
install -m 0600 /keys/host_key /etc/ssh/ssh_host_ed25519_key
socat TCP-LISTEN:{relay},bind=127.0.0.1,fork,reuseaddr TCP:{gw}:{port} &
exec /usr/sbin/sshd -D -e -o HostKey=/etc/ssh/ssh_host_ed25519_key \
  -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no \
  -o UsePAM=no -o StrictModes=no
"""


class Node:
    """The container: .ip, .url (ssh://root@IP), .key, .known_hosts."""

    def __init__(self, ws):
        from harness import baseimage, dockerd
        from harness.freshroot import RUNTIME_PACKAGES
        dockerd.ensure_dockerd()
        self.dockerd = dockerd
        baseimage.ensure_base_image(
            include=RUNTIME_PACKAGES + ["openssh-server", "socat"], tag=TAG)
        self.dir = tmpdir("tether-sshnode-")
        os.chmod(self.dir, 0o755)
        self.key = keygen(os.path.join(self.dir, "id_ed25519"))
        host_key = keygen(os.path.join(self.dir, "host_key"), comment="host")
        with open(self.key + ".pub") as f, \
                open(os.path.join(self.dir, "authorized_keys"), "w") as out:
            out.write(f.read())
        gw = self._gateway()
        self.name = "tether-sshnode-" + uuid.uuid4().hex[:8]
        # Not --privileged (this host cannot grant every capability):
        # SYS_ADMIN is what the agent's sandbox needs (namespaces, mounts).
        dockerd.cli("run", "-d", "--cgroupns", "private", "--cap-add",
                    "SYS_ADMIN", "--security-opt",
                    "seccomp=unconfined", "--security-opt",
                    "apparmor=unconfined", "--name", self.name,
                    "--hostname", "far-box", "-v", f"{self.dir}:/keys:ro",
                    TAG, "sh", "-c",
                    BOOT.format(relay=RELAY_PORT, gw=gw, port=ws.port))
        info = json.loads(dockerd.cli("inspect", self.name).stdout)[0]
        self.ip = info["NetworkSettings"]["IPAddress"]
        wait_port(22, host=self.ip, timeout=30)
        with open(host_key + ".pub") as f:
            kind, blob = f.read().split()[:2]
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.write(f"{self.ip} {kind} {blob}\n")
        self.fingerprint = fingerprint_of(host_key + ".pub")
        self.url = f"ssh://root@{self.ip}"

    def _gateway(self):
        """The host's address on docker's default bridge: IPAM's Gateway,
        which an engine that picked the subnet itself may leave out (seen
        on a fresh machine: Config holds only the Subnet); then the
        bridge interface's own address."""
        out = self.dockerd.cli("network", "inspect", "bridge").stdout
        net = json.loads(out)[0]
        gw = (net["IPAM"]["Config"] or [{}])[0].get("Gateway")
        if gw:
            return gw
        dev = (net.get("Options") or {}).get(
            "com.docker.network.bridge.name", "docker0")
        out = subprocess.run(["ip", "-4", "-j", "addr", "show", dev],
                             capture_output=True, text=True,
                             check=True).stdout
        return json.loads(out)[0]["addr_info"][0]["local"]

    def sh(self, cmd):
        return self.dockerd.cli("exec", self.name, "sh", "-c", cmd,
                                check=False).stdout

    def remove(self):
        self.dockerd.cli("rm", "-f", self.name, check=False)


@pytest.fixture
def ws_any():
    """A workspace whose TLS port listens on every address."""
    # The agent installed there runs with the default heartbeat (30s): give
    # its leases room (the harness's 3s would lose jobs on a busy machine).
    ws = Workspace(listen="0.0.0.0", lease_ttl="60s", poll="5s").start()
    yield ws
    ws.stop()


@pytest.fixture
def node(ws_any):
    if os.geteuid() != 0:
        pytest.skip("needs root (docker)")
    try:
        n = Node(ws_any)
    except Exception as exc:  # no engine, no image: say why
        pytest.skip(f"no test container: {exc}")
    yield n
    n.remove()


def attach(ws, node, *extra):
    argv = [binary("tether"), "--workspace", ws.url, "--token",
            ws.admin_token, "--ca", ws.ca_file, "attach", node.url,
            "--key", node.key, "--known-hosts", node.known_hosts,
            "--agent-workspace", f"https://127.0.0.1:{RELAY_PORT}",
            "--from", BUILD_DIR, "--installer",
            os.path.join(SOURCE_DIR, "install", "install.sh"),
            "--timeout", "90s", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=240)


def agents(ws):
    return ws.api("GET", "/api/v1/agents")[2]["agents"]


def online(ws, name):
    return [a for a in agents(ws) if a["name"] == name
            and a["state"] == "online"]


def test_attach_second_host_runs_a_job_refuses_twice_replace_takes_over(
        ws_any, node):
    ws = ws_any
    r = attach(ws, node, "--name", "box-1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert online(ws, "box-1"), agents(ws)
    machine_id = node.sh("cat /etc/machine-id").strip()
    assert machine_id and machine_id != open("/etc/machine-id").read().strip()

    job = ws.submit(name="far", command=["sh", "-c",
                                         "echo ran on $(cat /etc/hostname)"])
    j = wait_until(lambda: (lambda x: x if x["state"] in (
        "succeeded", "failed", "launch_failed", "lost") else None)(
        ws.job(job)), 90, what="the job on the far box")
    assert j["state"] == "succeeded", (
        json.dumps(j["attempts"]), ws.api("GET", f"/api/v1/jobs/{job}/log")[2],
        node.sh("tail -50 /var/log/tether-agent.log"))
    assert j["attempts"][-1]["agent"] == "box-1"
    assert ws.api("GET", f"/api/v1/jobs/{job}/log")[2].endswith(
        b"ran on far-box\n")

    n_agents = len(agents(ws))
    r = attach(ws, node, "--name", "box-2")
    assert r.returncode == 6, r.stdout + r.stderr
    assert "already attached" in r.stderr
    assert len(agents(ws)) == n_agents and online(ws, "box-1")

    first = online(ws, "box-1")[0]["id"]
    r = attach(ws, node, "--name", "box-2", "--replace")
    assert r.returncode == 0, r.stdout + r.stderr
    assert online(ws, "box-2")
    assert [a["state"] for a in agents(ws) if a["id"] == first] == ["revoked"]
    job = ws.submit(name="again", command=["true"])
    try:
        j = wait_until(lambda: (lambda x: x if x["state"] in (
            "succeeded", "failed", "launch_failed", "lost") else None)(
            ws.job(job)), 90, what="a job on the replacing agent")
    except TimeoutError:
        j = ws.job(job)
    assert j["state"] == "succeeded", (
        j, agents(ws), node.sh("tail -60 /var/log/tether-agent.log"))
    assert ws.job(job)["attempts"][-1]["agent"] == "box-2"
