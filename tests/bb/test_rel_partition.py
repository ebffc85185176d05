"""Network partition between agent and workspace (issue 13, item 4): the
agent runs in its own network namespace, joined to the workspace's host by
a veth pair (harness/netns.py); the partition is the link set down, or
nftables rules in the namespace dropping every packet (no RST: connections
hang, unlike a stopped workspace, tests/bb/test_agent_recovery.py).

Criteria as for a workspace outage (item 3): a partition shorter than the
lease leaves the job running and its log and status complete afterwards
(one attempt); a partition longer than the lease ends the old attempt at
its deadline before the workspace starts the next one (timestamps never
overlap), and the old attempt's log still arrives whole."""
import os
import shutil
import time

import pytest

import harness.agent as agent_mod
from harness.agent import Agent, stamps
from harness.common import binary, tmpdir, wait_until
from harness.netns import NetNS
from harness.proxy import Certs
from harness.workspace import Remote, Workspace


@pytest.fixture
def net(monkeypatch):
    ns = NetNS()
    real = binary("tether-agent")
    wrapped = ns.wrapper_script(real, tmpdir("tether-netns-"))
    orig = agent_mod.binary
    monkeypatch.setattr(agent_mod, "binary",
                        lambda n: wrapped if n == "tether-agent" else orig(n))
    yield ns
    ns.close()


def split_setup(ns, **ws_settings):
    """A workspace on all addresses with a certificate for the veth
    address, and an agent in the namespace attached to it."""
    certs = Certs()
    crt, key = certs.leaf("ws", self_signed=True,
                          sans=f"IP:127.0.0.1,IP:{ns.host_ip},DNS:localhost")
    ws = Workspace(listen="0.0.0.0", **ws_settings)
    shutil.copy(crt, os.path.join(ws.dir, "tls.crt"))
    shutil.copy(key, os.path.join(ws.dir, "tls.key"))
    import ssl
    ws.ctx = ssl.create_default_context(cafile=ws.ca_file)
    ws.start()
    ag = Agent(None, backoff_min="200ms", backoff_max="1500ms", kill_grace="1s")
    ag.ws = Remote(ws, f"https://{ns.host_ip}:{ws.port}")
    ag.write_conf()
    return ws, ag


@pytest.mark.parametrize("how", ["link", "nft"])
def test_partition_shorter_than_the_lease(net, how):
    ws, ag = split_setup(net, lease_ttl="30s")
    try:
        ag.start()
        script = "echo before; sleep 2; seq 1 50000; echo after"
        job = ws.submit(name="part", command=["sh", "-c", script])
        ag.wait_job(job, "running", timeout=30)
        (net.link if how == "link" else lambda on: net.drop(not on))(False)
        wait_until(lambda: os.path.exists(os.path.join(ag.attempt_dir(job),
                                                       "result.json")), 20,
                   what="the job to finish during the partition")
        time.sleep(4)  # several backoff periods
        assert ws.job(job)["state"] == "running"
        (net.link if how == "link" else lambda on: net.drop(not on))(True)
        j = ag.wait_job(job, "succeeded", timeout=60)
        assert len(j["attempts"]) == 1, j
        with open(os.path.join(ag.attempt_dir(job), "log"), "rb") as f:
            node = f.read()
        assert ag.ws_log(job) == node
        assert b"before\n" in node and b"after\n" in node
    finally:
        ag.kill9()
        ws.stop()


def test_partition_longer_than_the_lease_fences_the_attempt(net):
    ws, ag = split_setup(net, lease_ttl="3s", lost_grace="1s", lost_margin="500ms")
    try:
        ag.start()
        script = "while true; do date +%s.%N; sleep 0.1; done"
        job = ws.submit(name="fence", command=["sh", "-c", script], retries=1)
        ag.wait_job(job, "running", timeout=30)
        time.sleep(1)
        net.drop(True)
        res = os.path.join(ag.attempt_dir(job, 1), "result.json")
        wait_until(lambda: os.path.exists(res), 15,
                   what="the runner to end the job at its lease deadline")
        time.sleep(3)
        net.drop(False)
        j = wait_until(lambda: len(ws.job(job)["attempts"]) >= 2 and ws.job(job),
                       60, what="a second attempt")
        assert j["attempts"][0]["reason"] == "lost", j
        wait_until(lambda: ag.ws_log(job, attempt=2).count(b"\n") > 3, 30,
                   what="attempt 2 to print")
        with open(os.path.join(ag.attempt_dir(job, 1), "log"), "rb") as f:
            a1 = f.read()
        assert max(stamps(a1)) < min(stamps(ag.ws_log(job, attempt=2)))
        wait_until(lambda: ag.ws_log(job, attempt=1) == a1, 30,
                   what="attempt 1's log to be complete at the workspace")
        ws.api("POST", f"/api/v1/jobs/{job}/cancel")
        ag.wait_job(job, "cancelled", timeout=30)
    finally:
        ag.kill9()
        ws.stop()
