"""tether-agent over ssh:// against the real workspace (its loopback plain
HTTP listener, reached through direct-tcpip channels of a real sshd)."""
import gc
import glob
import importlib
import os
import signal
import time
import types

import pytest

from harness.agent import Agent
from harness.workspace import Workspace
from harness.common import Proc, binary, wait_until
from harness.fixtures_agent import agents_made_by


class SshAgent(Agent):
    """An Agent whose workspace URL is ssh://: the workspace's plain port is
    reached through `sshd` (harness/sshd.py)."""

    def __init__(self, workspace, sshd, key="ed25519", known_hosts=None,
                 **kw):
        self.sshd = sshd
        self.ssh_key = sshd.keys[key]
        self.known_hosts = known_hosts or sshd.known_hosts()
        self.ssh_extra = {}
        if key == "ed25519_pass":
            self.ssh_extra["ssh_key_passphrase_file"] = sshd.passfile
        super().__init__(workspace, **kw)

    def write_conf(self):
        super().write_conf()
        with open(self.conf) as f:
            lines = [ln for ln in f.read().splitlines()
                     if not ln.startswith(("workspace =", "ca_file ="))]
        lines += [f"workspace = {self.sshd.url}",
                  f"ssh_known_hosts = {self.known_hosts}",
                  f"ssh_key = {self.ssh_key}",
                  f"ssh_remote_port = {self.ws.plain_port}"]
        lines += [f"{k} = {v}" for k, v in self.ssh_extra.items()]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")


@pytest.fixture
def agent_factory(workspace, sshd):
    """This module's agents speak ssh:// (overrides fixtures_agent.py's
    fixture of the same name for every test collected here, including the
    agent suite imported below)."""
    yield from agents_made_by(lambda **kw: SshAgent(workspace, sshd, **kw))


@pytest.fixture
def agent(agent_factory):
    return agent_factory().start()


# Modules about HTTPS itself: an HTTP(S) proxy does not apply to ssh://.
HTTPS_ONLY = {"test_agent_proxy"}
# Tests whose measure is HTTPS-specific, with an ssh:// version below:
# the idle agent's wake-ups (the tunnel thread adds its own).
HTTPS_ONLY_TESTS = {"test_idle_agent_wakes_about_once_per_heartbeat"}

_sshd_now = None  # the current test's sshd, for agents the tests build


@pytest.fixture(autouse=True)
def _sshd_for_built_agents(request):
    global _sshd_now
    _sshd_now = request.getfixturevalue("sshd")
    yield
    _sshd_now = None


def _agent_over_ssh(workspace=None, **kw):
    """Agent(...) as the suite's tests call it, but over ssh:// whenever a
    workspace is given (Agent(None) is a node without one)."""
    if workspace is None:
        return Agent(workspace, **kw)
    return SshAgent(workspace, _sshd_now, **kw)


def _refusing_on_plain_port(cls):
    """The outage tests hold the workspace's TLS port with a listener that
    records the agent's reconnect attempts; over ssh:// those land on the
    plain port (each retry opens a channel that sshd connects there), so
    hold that one instead."""
    def make(port):
        for o in gc.get_objects():
            if isinstance(o, Workspace) and o.port == port and o.plain_port:
                return cls(o.plain_port)
        return cls(port)
    return make


def _import_agent_suite():
    """The agent black-box suite (tests/bb/test_agent_*.py), collected again
    here so that its tests run over ssh://: the fixtures above replace the
    agent fixtures, and in each test's globals `Agent` builds ssh:// agents
    (the workspace outage and kill -9 tests build their own)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "test_agent_*.py"))):
        name = os.path.basename(path)[:-3]
        if name in HTTPS_ONLY:
            continue
        mod = importlib.import_module(name)
        env = dict(vars(mod), Agent=_agent_over_ssh)
        if "RefusingListener" in env:
            env["RefusingListener"] = _refusing_on_plain_port(
                env["RefusingListener"])
        for tname, obj in vars(mod).items():
            # the module's own fixtures (e.g. test_agent_nvml's fake_nvml)
            # must be visible here too
            if hasattr(obj, "_pytestfixturefunction") and \
                    tname not in globals():
                globals()[tname] = obj
                continue
            if not (tname.startswith("test_") and
                    isinstance(obj, types.FunctionType)) or \
                    tname in HTTPS_ONLY_TESTS:
                continue
            f = types.FunctionType(obj.__code__, env, obj.__name__,
                                   obj.__defaults__, obj.__closure__)
            f.__dict__.update(obj.__dict__)  # pytest marks
            globals()["test_suite_" + tname[5:]] = f


_import_agent_suite()


def agents(workspace):
    st, _, body = workspace.api("GET", "/api/v1/agents")
    assert st == 200
    return body["agents"]


def test_register_and_run_a_job_over_ssh(workspace, sshd, agent_factory):
    ag = agent_factory().start()
    job = workspace.submit(name="hello", command=["sh", "-c", "seq 1 1000"])
    j = ag.wait_job(job, "succeeded", timeout=60)
    assert j["attempts"][-1]["agent"] == ag.name
    assert ag.ws_log(job).endswith(b"999\n1000\n")
    mine = [a for a in agents(workspace) if a["name"] == ag.name]
    assert mine and mine[0]["state"] == "online"
    assert len(sshd.accepted()) >= 1


def token_uses_left(workspace, token_id=None):
    st, _, body = workspace.api("GET", "/api/v1/tokens")
    return [t["uses_left"] for t in body["tokens"]]


def test_agent_refuses_unknown_host_key_and_sends_nothing(workspace, sshd,
                                                          agent_factory):
    empty = os.path.join(sshd.dir, "empty_known_hosts")
    open(empty, "w").close()
    ag = agent_factory(known_hosts=empty)
    ag.token = workspace.token()
    p = Proc([binary("tether-agent"), "--token", ag.token], ag.log_path,
             env=ag.env())
    assert p.p.wait(30) != 0
    out = ag.output()
    assert "unknown host key " + sshd.fingerprint() in out, out[-3000:]
    # Nothing was sent: no authentication attempt, the token is unused,
    # the workspace knows no agent.
    assert sshd.auth_attempts() == []
    assert token_uses_left(workspace) == [1]
    assert agents(workspace) == []
    assert ag.token not in out


def test_agent_reconnects_when_the_connection_drops(workspace, sshd,
                                                    agent_factory):
    ag = agent_factory().start()
    j1 = workspace.submit(name="one", command=["true"])
    ag.wait_job(j1, "succeeded", timeout=60)
    n = len(sshd.accepted())
    assert sshd.drop_connections() >= 1
    wait_until(lambda: "SSH connection lost" in ag.output(), 15,
               what="the agent to notice the dropped connection")
    j2 = workspace.submit(name="two", command=["sh", "-c", "echo again"])
    ag.wait_job(j2, "succeeded", timeout=60)
    assert ag.ws_log(j2).endswith(b"again\n")
    assert len(sshd.accepted()) > n  # a new SSH connection
    assert ag.alive()


def test_agent_with_a_key_the_server_refuses_exits_clearly(workspace, sshd,
                                                          agent_factory):
    ag = agent_factory(key="stranger")
    ag.token = workspace.token()
    p = Proc([binary("tether-agent"), "--token", ag.token], ag.log_path,
             env=ag.env())
    assert p.p.wait(30) != 0
    out = ag.output()
    assert "authentication refused" in out and ag.ssh_key in out, out[-2000:]
    assert sshd.accepted() == []
    assert token_uses_left(workspace) == [1]  # the token never left
    assert ag.token not in out


def test_keepalives_detect_a_silent_server(workspace, sshd, agent_factory):
    ag = agent_factory()
    ag.ssh_extra["ssh_keepalive"] = "1s"
    ag.write_conf()
    ag.start()
    assert sshd.signal_connections(signal.SIGSTOP) >= 1
    try:
        wait_until(lambda: "no answer from the server" in ag.output(), 20,
                   what="the tunnel to give up on a silent server")
    finally:
        sshd.signal_connections(signal.SIGCONT)
    sshd.drop_connections()
    job = workspace.submit(name="after", command=["true"])
    ag.wait_job(job, "succeeded", timeout=60)


def test_changed_host_key_on_reconnect_is_refused(workspace, sshd,
                                                  agent_factory):
    ag = agent_factory().start()
    old = sshd.fingerprint()
    n = len(sshd.accepted())
    sshd.rotate_host_key()  # drops the connection, new key, same port
    new = sshd.fingerprint()
    wait_until(lambda: "HOST KEY CHANGED" in ag.output(), 30,
               what="the agent to refuse the changed host key")
    line = [ln for ln in ag.output().splitlines()
            if "HOST KEY CHANGED" in ln][0]
    assert new in line and old in line
    job = workspace.submit(name="never", command=["true"])
    time.sleep(2)
    # Not run (a lease poll that was held when the connection died may have
    # been given the job: "assigned", and lost later by its lease).
    assert workspace.job(job)["state"] in ("queued", "assigned")
    assert not os.path.exists(ag.attempt_dir(job))
    assert len(sshd.accepted()) == n  # never authenticated again
    assert ag.alive()


def _ctx_switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
    return total


def test_idle_agent_over_ssh_wakes_a_few_times_per_heartbeat(sshd):
    ws = Workspace(poll="2s", poll_max_wait="10s", lease_ttl="10s").start()
    try:
        ag = SshAgent(ws, sshd, heartbeat_interval="2s",
                      log_level="info").start()
        time.sleep(3)
        before = _ctx_switches(ag.pid)
        window = 10.0
        time.sleep(window)
        woke = _ctx_switches(ag.pid) - before
        intervals = window / 2.0
        # The agent's loop wakes once per interval, as over HTTPS; the
        # tunnel thread wakes to forward each poll's request and its reply.
        # An idle tunnel sleeps (no timer ticks): a busy loop or a periodic
        # timer would cost tens to hundreds.
        print("wake-ups:", woke)
        assert woke <= 4 * intervals + 2, woke
    finally:
        ws.stop()
