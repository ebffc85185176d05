"""Transport trust (issue 13, item 13): the agent refuses a workspace it
cannot trust and never sends it its secret or registration token; the
workspace refuses one agent's credential used for another agent's work.

The untrusted servers are CaptureServer (harness/proxy.py): a TLS
listener that records every byte a client sends after a completed
handshake.  A control case with a properly signed certificate shows the
capture works (the secret does arrive there).  SSH host keys (unknown,
changed) are covered by tests/bb/test_ssh_agent.py."""
import json
import time

import pytest

from harness.agent import Agent
from harness.common import wait_until
from harness.proxy import CaptureServer, Certs


class Target:
    """What Agent needs of a workspace: url, ca_file (and token())."""

    def __init__(self, url, ca_file, ws):
        self.url, self.ca_file, self._ws = url, ca_file, ws

    def token(self, **kw):
        return self._ws.token(**kw)


@pytest.fixture(scope="module")
def certs():
    return Certs()


CASES = {
    "trusted": dict(),  # control: the capture sees the secret
    "self_signed": dict(self_signed=True),
    "expired": dict(expired=True),
    "wrong_host": dict(sans="DNS:wrong.example.com"),
}


def point_at(ag, cap, certs):
    ag.ws = Target(cap.url, certs.ca, ag.ws)
    ag.write_conf()


@pytest.mark.parametrize("case", list(CASES))
def test_registered_agent_never_sends_its_secret(workspace, certs, case):
    """Scenario: a registered agent restarts and finds, at its workspace's
    address, a server whose certificate is self-signed (not in the CA
    file), expired, or for another host name.  Pass: nothing at all is
    received in clear (so neither the secret), over several retries; in the
    control case (a valid certificate) the secret does arrive.  (libcurl
    checks the host name right after the handshake, so that handshake may
    complete: what matters is that no byte follows.)"""
    ag = Agent(workspace).start()
    secret = json.load(open(ag.state_dir + "/credentials"))["secret"]
    ag.kill9()
    workspace.stop()  # the agent only talks to the URL it registered with
    cap = CaptureServer(*certs.leaf(case, **CASES[case]), port=workspace.port)
    try:
        point_at(ag, cap, certs)
        ag.start(wait_registered=False)
        if case == "trusted":
            wait_until(lambda: secret.encode() in cap.plaintext, 20,
                       what="the secret to reach a trusted server")
            return
        wait_until(lambda: cap.connections >= 3, 20,
                   what="the agent to retry the untrusted server")
        time.sleep(0.5)
        assert cap.plaintext == b"", cap.plaintext[:200]
        if case != "wrong_host":
            assert cap.handshakes_ok == 0, case
        assert secret not in ag.output()
        assert "certificate" in ag.output().lower() or "ssl" in ag.output().lower()
    finally:
        ag.kill9()
        cap.close()


@pytest.mark.parametrize("case", ["trusted", "self_signed", "wrong_host"])
def test_registration_token_never_sent(workspace, certs, case):
    """Scenario: a new agent registers against an untrusted server.  Pass:
    the registration token is never received (control: it is, when the
    certificate is valid)."""
    cap = CaptureServer(*certs.leaf("reg-" + case, **CASES[case]))
    try:
        ag = Agent(Target(cap.url, certs.ca, workspace))
        ag.token = workspace.token()
        ag.start(wait_registered=False)
        if case == "trusted":
            wait_until(lambda: ag.token.encode() in cap.plaintext, 20,
                       what="the token to reach a trusted server")
        else:
            wait_until(lambda: cap.connections >= 2, 20,
                       what="the agent to try the untrusted server")
            time.sleep(0.5)
            assert cap.plaintext == b"", cap.plaintext[:200]
            assert ag.token not in ag.output()
        ag.kill9()
    finally:
        cap.close()


def test_other_agents_credential_is_refused(workspace):
    """Scenario: agent A's secret is replayed for agent B's attempt (log,
    events, outputs, lease renewal), and a revoked secret is replayed.
    Pass: 404/409/401 and no effect: B's log, state and lease unchanged."""
    sa = workspace.register(name="node-a")
    sb = workspace.register(name="node-b")
    job = workspace.submit(name="j", command=["true"],
                           placement={"agent": "node-b"})
    rep = workspace.lease(sb)
    assert [j["job"] for j in rep["jobs"]] == [job], rep
    st, _, b = workspace.append(sa, job, 1, 0, b"forged")
    assert st in (403, 404), (st, b)
    st, _, b = workspace.events(sa, job, 1, [{"seq": 1, "time": 1.0,
                                              "type": "final", "reason": "succeeded",
                                              "exit_code": 0, "signal": None}])
    assert st in (403, 404, 409), (st, b)
    rep = workspace.lease(sa, running=[(job, 1)])
    assert all(r["job"] != job for r in rep.get("renewed", [])), rep
    st, _, log = workspace.api("GET", f"/api/v1/jobs/{job}/log?offset=0")
    assert st == 200 and log == b"", log
    assert workspace.job(job)["state"] in ("assigned", "running"), workspace.job(job)
    # B's own credential still works; once B is revoked it does not.
    assert workspace.append(sb, job, 1, 0, b"ok")[0] == 200
    st, _, _ = workspace.api("DELETE", "/api/v1/agents/node-b")
    assert st == 200
    st, _, b = workspace.append(sb, job, 1, 2, b"late")
    assert st == 401, (st, b)
    st, _, b = workspace.api("POST", "/api/v1/agents/lease", json={"wait": 0},
                             token=sb)
    assert st == 401, b
