"""Multi-node jobs: the rendezvous and the start barrier
(docs/multi-node.md).  Every rank gets its rank, every rank's address and
rank 0's free port, through the workspace, only once every rank's source
and environment are ready; processes_per_node copies of the command each
get their own RANK/LOCAL_RANK; an MPI hostfile; the interface of the
node's address.  The examples/ddp-digits acceptance runs on agents in
network namespaces of their own (harness/netcluster.py) that reach the
workspace over TLS on a non-loopback address."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from harness.agent import Agent
from harness.common import SOURCE_DIR, binary, wait_until
from harness.life import events, upload_snapshot
from harness.workspace import Workspace

PY = "/usr/bin/python3"
ENV_SCRIPT = (
    'for v in TETHER_NODE_RANK TETHER_NODES TETHER_NODE_IPS '
    'TETHER_MASTER_ADDR TETHER_MASTER_PORT TETHER_PROCESSES_PER_NODE '
    'TETHER_HOSTFILE MASTER_ADDR MASTER_PORT WORLD_SIZE RANK LOCAL_RANK '
    'NODE_RANK LOCAL_WORLD_SIZE GLOO_SOCKET_IFNAME NCCL_SOCKET_IFNAME; do '
    'eval "echo p$LOCAL_RANK $v=\\$$v"; done; '
    'sed "s/^/p$LOCAL_RANK hostfile /" "$TETHER_HOSTFILE"')


def _agents(agent_factory, n, **kw):
    tag = f"{os.getpid()}-{time.time()}"
    return [agent_factory(machine_id=f"rdv-{tag}-{i}", **kw).start()
            for i in range(n)]


def _log(ws, jid, attempt):
    st, _, body = ws.api("GET", f"/api/v1/jobs/{jid}/log?attempt={attempt}")
    assert st == 200, body
    return body.decode() if isinstance(body, bytes) else str(body)


def _vars(log):
    """{process: {NAME: value}} and {process: [hostfile lines]}."""
    env, hosts = {}, {}
    for m in re.finditer(r"^p(\d+) (\w+)=(.*)$", log, re.M):
        env.setdefault(int(m[1]), {})[m[2]] = m[3]
    for m in re.finditer(r"^p(\d+) hostfile (.*)$", log, re.M):
        hosts.setdefault(int(m[1]), []).append(m[2])
    return env, hosts


def _ended(ws, jid, timeout):
    wait_until(lambda: ws.job(jid)["state"] not in
               ("queued", "assigned", "running"), timeout,
               what=f"job {jid} to end")
    return ws.job(jid)


def test_two_nodes_two_processes_get_their_ranks_and_a_hostfile(
        workspace, agent_factory):
    _agents(agent_factory, 2)
    # the job's own env names the rendezvous variables: they are ours
    jid = workspace.submit(name="rdv", command=["sh", "-c", ENV_SCRIPT],
                           nodes=2, processes_per_node=2,
                           env={"MASTER_ADDR": "192.0.2.66", "RANK": "99",
                                "MASTER_PORT": "1"})
    jb = _ended(workspace, jid, 60)
    assert jb["state"] == "succeeded", jb
    first = min(a["attempt"] for a in jb["attempts"])
    ports = set()
    for rank in (0, 1):
        env, hosts = _vars(_log(workspace, jid, first + rank))
        assert sorted(env) == [0, 1], env
        for local in (0, 1):
            e = env[local]
            assert e["TETHER_NODE_RANK"] == e["NODE_RANK"] == str(rank), e
            assert e["TETHER_NODES"] == "2"
            assert e["TETHER_PROCESSES_PER_NODE"] == "2"
            assert e["WORLD_SIZE"] == "4" and e["LOCAL_WORLD_SIZE"] == "2"
            assert e["RANK"] == str(rank * 2 + local), e
            assert e["LOCAL_RANK"] == str(local)
            # loopback agents: the route to the workspace is 127.0.0.1
            assert e["TETHER_NODE_IPS"] == "127.0.0.1,127.0.0.1", e
            assert e["MASTER_ADDR"] == e["TETHER_MASTER_ADDR"] == "127.0.0.1"
            assert e["MASTER_PORT"] == e["TETHER_MASTER_PORT"], e
            assert 1024 <= int(e["MASTER_PORT"]) <= 65535, e
            assert e["GLOO_SOCKET_IFNAME"] == e["NCCL_SOCKET_IFNAME"] == "lo"
            assert e["TETHER_HOSTFILE"] == "/tether/work/.tether-hostfile"
            assert hosts[local] == ["127.0.0.1 slots=2"] * 2, hosts
            ports.add(e["MASTER_PORT"])
    assert len(ports) == 1, ports  # rank 0's port reached rank 1


def _slow_runner(tmp, seconds):
    """A runner_path that starts the real runner `seconds` late: its rank
    reaches the start barrier that much after the others."""
    p = os.path.join(tmp, "slow-runner")
    with open(p, "w") as f:
        f.write(f'#!/bin/sh\nsleep {seconds}\nexec {binary("tether-runner")} '
                '"$@"\n')
    os.chmod(p, 0o755)
    return p


def test_no_rank_starts_before_every_rank_is_ready(workspace, agent_factory,
                                                  tmp_path):
    fast = agent_factory(machine_id=f"rdv-f-{time.time()}").start()
    # runner_path: this agent's rank is ready 4 s after the other's
    slow = agent_factory(machine_id=f"rdv-s-{time.time()}",
                         runner_path=_slow_runner(str(tmp_path), 4)).start()
    jid = workspace.submit(name="barrier", command=["true"], nodes=2)
    jb = _ended(workspace, jid, 60)
    assert jb["state"] == "succeeded", jb
    ready, started = [], []
    for a in jb["attempts"]:
        evs = events(workspace, jid, a["attempt"])
        ready += [e["time"] for e in evs if e["type"] == "ready"]
        started += [e["time"] for e in evs if e["type"] == "started"]
        assert [e for e in evs if e["type"] == "ready"][0]["address"] == \
            "127.0.0.1"
    assert len(ready) == len(started) == 2
    assert max(ready) - min(ready) > 3, ready  # one waited at the barrier
    assert min(started) >= max(ready), (ready, started)
    assert fast.alive() and slow.alive()
    print(f"barrier: last rank ready -> commands started "
          f"{min(started) - max(ready):.3f} / {max(started) - max(ready):.3f} s")


def test_a_rank_waiting_at_the_barrier_stops_when_the_job_is_cancelled(
        workspace, agent_factory, tmp_path):
    fast = agent_factory(machine_id=f"rdv-f-{time.time()}").start()
    agent_factory(machine_id=f"rdv-s-{time.time()}",
                  runner_path=_slow_runner(str(tmp_path), 60)).start()
    jid = workspace.submit(name="barrier", command=["true"], nodes=2)

    def waiting():
        for a in workspace.job(jid)["attempts"]:
            if any(e["type"] == "ready"
                   for e in events(workspace, jid, a["attempt"])):
                return a
        return None
    a = wait_until(waiting, 30, what="a rank at the start barrier")
    st, _, b = workspace.api("POST", f"/api/v1/jobs/{jid}/cancel")
    assert st in (200, 202), b
    t0 = time.time()
    wait_until(lambda: [x for x in workspace.job(jid)["attempts"]
                        if x["attempt"] == a["attempt"]][0]["state"]
               not in ("assigned", "running", "cancelling"), 20,
               what="the waiting rank to stop")
    assert time.time() - t0 < 2 + 2  # kill_grace (harness: 2s) + 2 s
    mine = [x for x in workspace.job(jid)["attempts"]
            if x["attempt"] == a["attempt"]][0]
    assert mine["reason"] == "cancelled", mine
    assert "started" not in [e["type"] for e in
                             events(workspace, jid, a["attempt"])]
    assert "stopped at the start barrier" in _log(workspace, jid,
                                                  a["attempt"])
    assert fast.alive()


@pytest.mark.parametrize("ev,field", [
    ({"address": "10.0.0.1; rm -rf /", "port": 5}, "events[0].address"),
    ({"address": "10.0.0.1", "port": 70000}, "events[0].port"),
    ({"port": 5}, "events[0].address"),
    ({"address": "10.0.0.1"}, "events[0].port"),
])
def test_ready_events_are_checked_naming_the_field(workspace, ev, field):
    secret = workspace.register(name="rdv-bad")
    st, _, b = workspace.api(
        "POST", "/api/v1/attempts/1/1/events",
        json={"events": [dict(seq=1, type="ready", **ev)]}, token=secret)
    assert st == 400 and b["error"]["field"] == field, b


def test_one_node_with_two_processes_meets_on_loopback(workspace,
                                                       agent_factory):
    _agents(agent_factory, 1)
    jid = workspace.submit(name="ppn", command=["sh", "-c", ENV_SCRIPT],
                           processes_per_node=2)
    jb = _ended(workspace, jid, 60)
    assert jb["state"] == "succeeded", jb
    env, hosts = _vars(_log(workspace, jid, jb["attempt"]))
    assert sorted(env) == [0, 1]
    assert {env[i]["RANK"] for i in (0, 1)} == {"0", "1"}
    assert env[0]["WORLD_SIZE"] == "2" and env[0]["MASTER_ADDR"] == "127.0.0.1"
    assert hosts[0] == ["127.0.0.1 slots=2"]


def test_one_failing_process_fails_the_rank(workspace, agent_factory):
    _agents(agent_factory, 1)
    # process 1 exits 5 at once; process 0 would sleep a minute
    script = 'if [ "$LOCAL_RANK" = 1 ]; then exit 5; fi; sleep 60'
    jid = workspace.submit(name="ppn", command=["sh", "-c", script],
                           processes_per_node=2)
    t0 = time.time()
    jb = _ended(workspace, jid, 30)
    assert time.time() - t0 < 20
    assert jb["state"] == "failed", jb
    a = [x for x in jb["attempts"] if x["attempt"] == jb["attempt"]][0]
    assert a["exit_code"] == 5, a


def test_init_tls_ip_adds_the_address_and_refuses_a_non_address(tmp_path):
    good, bad = str(tmp_path / "good"), str(tmp_path / "bad")
    subprocess.run([binary("tether-workspace"), "init", "--dir", good,
                    "--tls-ip", "10.233.7.1", "--tls-ip", "fd00::7"],
                   check=True, capture_output=True)
    san = subprocess.run(["openssl", "x509", "-in", good + "/tls.crt",
                          "-noout", "-ext", "subjectAltName"],
                         check=True, capture_output=True, text=True).stdout
    for want in ("127.0.0.1", "localhost", "10.233.7.1", "FD00:0:0:0:0:0:0:7"):
        assert want in san, san
    r = subprocess.run([binary("tether-workspace"), "init", "--dir", bad,
                        "--tls-ip", "ws.example"], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "--tls-ip ws.example" in r.stderr, r
    assert not os.path.exists(bad)  # nothing half-made


def test_docker_ranks_and_docker_processes_are_refused_at_submit(workspace):
    # a docker job is on docker's bridge network (not reachable at its
    # node's address), and only the sandbox's init starts the copies
    for spec, field in [({"nodes": 2, "launcher": "docker"}, "nodes"),
                        ({"processes_per_node": 2, "launcher": "docker"},
                         "processes_per_node"),
                        ({"processes_per_node": 2, "launcher": "slurm"},
                         "processes_per_node")]:
        st, _, b = workspace.api("POST", "/api/v1/jobs",
                                 json={"name": "x", "command": ["true"],
                                       **spec})
        assert st == 400 and b["error"]["field"] == field, (spec, b)
    st, _, b = workspace.api("GET", "/api/v1/jobs")
    assert st == 200 and b["jobs"] == [], b


def test_a_rank_starts_before_a_local_job_queued_with_it(workspace,
                                                         agent_factory,
                                                         tmp_path):
    # max_jobs 1 (default 4): one slot, for which a rank and a local job
    # of higher priority arrive together
    a, b = [agent_factory(machine_id=f"rdv-q-{time.time()}-{i}",
                          max_jobs=1).start() for i in range(2)]
    time.sleep(1.5)  # both polls parked with their slot free
    a.signal(signal.SIGSTOP)
    try:
        jid = workspace.submit(name="gang", command=["true"], nodes=2)
        wait_until(lambda: len(workspace.job(jid)["attempts"]) == 2, 20,
                   what="the gang to be handed out")
        local = tmp_path / "local.json"
        local.write_text(json.dumps({"name": "local", "priority": 100,
                                     "command": ["sleep", "3"]}))
        lid = a.cmd("submit", str(local)).stdout.strip()
    finally:
        a.signal(signal.SIGCONT)
    jb = _ended(workspace, jid, 60)
    assert jb["state"] == "succeeded", jb
    mine = [x["attempt"] for x in jb["attempts"]
            if x["agent"] in (a.name, _agent_id(workspace, a.name))]
    assert len(mine) == 1, (jb, a.name)
    log = a.output()
    rank_at = log.find(f"job={jid} attempt={mine[0]} started")
    local_at = log.find(f"job={lid} attempt=1 started")
    assert 0 <= rank_at, log[-3000:]
    # the local job starts only once the rank's slot is free again
    assert local_at < 0 or rank_at < local_at, log[-3000:]
    assert b.alive()


def _agent_id(ws, name):
    st, _, b = ws.api("GET", "/api/v1/agents")
    return {x["name"]: x["id"] for x in b["agents"]}.get(name)


def test_the_hostfile_replaces_a_link_of_that_name_in_the_source(
        workspace, agent_factory):
    # the job's source holds .tether-hostfile as a link to its own file:
    # the runner (root) writes a new file, never through the link
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"mine\n"
        info = tarfile.TarInfo("victim.txt")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(".tether-hostfile")
        link.type, link.linkname = tarfile.SYMTYPE, "victim.txt"
        tar.addfile(link)
    st, _, b = workspace.api("POST", "/api/v1/snapshots", data=buf.getvalue(),
                             headers={"Content-Type":
                                      "application/octet-stream"})
    assert st == 201, b
    _agents(agent_factory, 1)
    jid = workspace.submit(
        name="link", processes_per_node=2, source={"snapshot": b["id"]},
        command=["sh", "-c", 'if [ "$LOCAL_RANK" = 0 ]; then '
                 'echo "victim: $(cat victim.txt)"; '
                 'echo "hostfile: $(cat $TETHER_HOSTFILE)"; '
                 'test -L .tether-hostfile && echo still-a-link; fi; true'])
    jb = _ended(workspace, jid, 60)
    assert jb["state"] == "succeeded", jb
    log = _log(workspace, jid, jb["attempt"])
    assert "victim: mine" in log, log
    assert "hostfile: 127.0.0.1 slots=2" in log, log
    assert "still-a-link" not in log, log


def test_node_address_must_be_an_ip_address(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text("node_address = node1.example\n")
    r = Agent(None).cmd("--config", str(conf), "status", check=False)
    assert r.returncode != 0
    assert "node_address: an IP address, not 'node1.example'" in r.stderr, r


def test_a_rank_waiting_at_the_barrier_stops_when_its_gang_ends(
        workspace, agent_factory, tmp_path):
    ok = agent_factory(machine_id=f"rdv-ok-{time.time()}").start()
    # default_python names no program on this agent: its rank's venv
    # build fails (env_failed), 8 s late (runner_path), while the other
    # rank waits at the barrier
    bad = agent_factory(machine_id=f"rdv-bad-{time.time()}",
                        default_python="/nonexistent/python3",
                        runner_path=_slow_runner(str(tmp_path), 8)).start()
    jid = workspace.submit(name="envfail", command=["true"], nodes=2,
                           environment={"kind": "venv"})
    jb = _ended(workspace, jid, 120)
    assert jb["state"] == "env_failed", jb
    t_end = jb["ended_at"]
    wait_until(lambda: all(x["state"] not in ("assigned", "running",
                                              "cancelling")
                           for x in workspace.job(jid)["attempts"]), 30,
               what="the waiting rank to stop")
    by = {x["agent"]: x for x in workspace.job(jid)["attempts"]}
    ids = {x["name"]: x["id"] for x in
           workspace.api("GET", "/api/v1/agents")[2]["agents"]}
    waiting = by.get(ok.name) or by[ids[ok.name]]
    assert waiting["reason"] == "cancelled", waiting
    assert waiting["ended_at"] - t_end < 2 + 2, (waiting, t_end)
    log = _log(workspace, jid, waiting["attempt"])
    assert "at the start barrier" in log and \
        "stopped at the start barrier: cancelled" in log, log
    assert bad.alive()


def test_a_runner_killed_at_the_barrier_is_started_again(workspace,
                                                         agent_factory,
                                                         tmp_path):
    fast = agent_factory(machine_id=f"rdv-k-{time.time()}").start()
    # runner_path: the other rank is ready 10 s late
    agent_factory(machine_id=f"rdv-s-{time.time()}",
                  runner_path=_slow_runner(str(tmp_path), 10)).start()
    jid = workspace.submit(name="barrier", command=["true"], nodes=2)
    ids = {x["name"]: x["id"] for x in
           workspace.api("GET", "/api/v1/agents")[2]["agents"]}

    def mine():
        for a in workspace.job(jid)["attempts"]:
            if a["agent"] in (fast.name, ids.get(fast.name)):
                return a["attempt"]
        return None
    att = wait_until(mine, 20, what="the fast agent's rank")
    d = fast.attempt_dir(jid, att)
    wait_until(lambda: "at the start barrier" in
               open(os.path.join(d, "log")).read(), 20,
               what="the rank at the barrier")
    with open(os.path.join(d, "state.json")) as f:
        pid = json.load(f)["runner_pid"]
    os.kill(pid, signal.SIGKILL)
    jb = _ended(workspace, jid, 60)
    assert jb["state"] == "succeeded", (jb, fast.output()[-3000:])
    log = _log(workspace, jid, att)
    assert log.count("at the start barrier") == 2, log
    assert "rendezvous: rank" in log, log
