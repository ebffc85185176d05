"""Fixtures of the VM tier: the guest image, the .deb, a workspace on the
host that guests reach over TLS at 10.0.2.2 (qemu's user network), and one
guest with the package installed and the agent registered."""
import contextlib
import os
import ssl
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bb"))

import vm  # noqa: E402
from harness import freshroot  # noqa: E402
from harness.common import tmpdir  # noqa: E402
from harness.workspace import Workspace  # noqa: E402

# The address of the host as a guest sees it (qemu user networking).
HOST_FROM_GUEST = "10.0.2.2"
CONF = "/etc/tether/agent.conf"


def _cert_for(ws_dir):
    """Replace the workspace's self-signed pair with one that names the
    address the guests use (10.0.2.2) beside the host's loopback."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
         "-subj", "/CN=tether-vm-workspace",
         "-addext", "subjectAltName=IP:%s,IP:127.0.0.1" % HOST_FROM_GUEST,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-keyout", os.path.join(ws_dir, "tls.key"),
         "-out", os.path.join(ws_dir, "tls.crt")],
        check=True, capture_output=True, timeout=60)
    os.chmod(os.path.join(ws_dir, "tls.key"), 0o600)


@pytest.fixture(scope="session")
def logdir():
    d = os.environ.get("TETHER_VM_LOGS") or tmpdir("tether-vm-logs-")
    os.makedirs(d, exist_ok=True)
    vm.log("guest logs in " + d)
    return d


@pytest.fixture(scope="session")
def image():
    return vm.ensure_image()


@pytest.fixture(scope="session")
def deb():
    return freshroot.build_package()


@contextlib.contextmanager
def make_workspace(**settings):
    """A workspace on the host with the documented durations
    (docs/workspace.md) but for settings, and a certificate for the
    address the guests use."""
    ws = Workspace()
    ws.settings = {"poll_max_wait": "20s"}  # a held poll is answered sooner
    ws.settings.update(settings)
    _cert_for(ws.dir)
    ws.ctx = ssl.create_default_context(cafile=ws.ca_file)
    ws.start()
    try:
        yield ws
    finally:
        ws.stop()


@pytest.fixture(scope="module")
def workspace():
    # The workspace's documented durations, not the black-box tier's fast
    # ones: an emulated guest is 7-30x slower than the host and must not
    # lose its leases to that.
    with make_workspace() as ws:
        yield ws


@pytest.fixture(scope="module")
def guest(request, image, logdir):
    """A fresh guest per test module (one module's guest is stopped before
    the next one boots: never more than one at a time)."""
    name = request.module.__name__.replace("test_vm_", "vm-")
    with vm.Guest(image, name=name, logdir=logdir) as g:
        yield g


def wait_job(ws, job_id, states=("succeeded", "failed", "cancelled", "lost",
                                 "timed_out", "oom"), timeout=300):
    """The job once its state is one of states."""
    deadline = time.time() + timeout
    while True:
        j = ws.job(job_id)
        if j["state"] in states:
            return j
        assert time.time() < deadline, "job %d still %s after %d s" % (
            job_id, j["state"], timeout)
        time.sleep(1)


def job_log(ws, job_id):
    st, _, body = ws.api("GET", "/api/v1/jobs/%d/log" % job_id)
    assert st == 200, body
    return body.decode(errors="replace") if isinstance(body, bytes) else \
        str(body)


def install_agent(guest, workspace, deb, name, extra_conf=""):
    """The .deb installed the documented way (docs/operations.md: dpkg -i,
    workspace and token in agent.conf, systemctl start); returns name."""
    guest.put(deb, "/root/tether.deb")
    with open(workspace.ca_file) as f:
        ca = f.read()
    r = guest.sh("dpkg -i /root/tether.deb", timeout=300)
    assert "set 'workspace' and 'token'" in r.stdout, r.stdout
    # Installed, enabled, not started before it is configured.
    assert guest.sh("systemctl is-enabled tether-agent").stdout.strip() == \
        "enabled"
    assert guest.sh("systemctl is-active tether-agent",
                    check=False).stdout.strip() != "active"
    token = workspace.token()
    guest.sh("cat > /etc/tether/ca.crt", input=ca)
    conf = ("workspace = https://%s:%d\ntoken = %s\nca_file = /etc/tether/ca.crt\n"
            "name = %s\n" % (HOST_FROM_GUEST, workspace.port, token, name)) + \
        extra_conf
    guest.sh("cat >> %s" % CONF, input=conf)
    guest.sh("systemctl start tether-agent")
    return name


def registered(workspace, name):
    st, _, body = workspace.api("GET", "/api/v1/agents")
    assert st == 200, body
    return [a for a in body["agents"] if a["name"] == name]
