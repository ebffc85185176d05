"""The `tether` CLI against the real workspace over TLS: every subcommand,
human and --json output, where the URL and token come from, exit codes."""
import hashlib
import json
import os
import subprocess
import threading

import pytest

from harness.common import binary, tmpdir


def tether(ws, *args, env=None, check=None, timeout=60, use_env=True):
    e = dict(os.environ)
    for k in ("TETHER_WORKSPACE", "TETHER_TOKEN", "TETHER_CA"):
        e.pop(k, None)
    e["XDG_CONFIG_HOME"] = os.path.join(tmpdir(), "nocfg")
    if use_env:
        e.update(TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
                 TETHER_CA=ws.ca_file)
    if env:
        e.update(env)
    r = subprocess.run([binary("tether"), *args], env=e, capture_output=True,
                       text=True, timeout=timeout)
    if check is not None:
        assert r.returncode == check, (args, r.returncode, r.stdout, r.stderr)
    return r


def spec_file(**kw):
    spec = {"name": "cli-job", "command": ["python3", "-c", "print(1)"]}
    spec.update(kw)
    path = os.path.join(tmpdir(), "job.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def test_help_lists_every_command(workspace):
    r = tether(workspace, "--help", check=0)
    for cmd in ["submit", "logs", "status", "cancel", "jobs", "agents", "token", "outputs"]:
        assert cmd in r.stdout
    r = tether(workspace, "submit", "--help", check=0)
    assert "usage: tether submit" in r.stdout
    r = tether(workspace, "nosuch", check=2)
    assert "unknown command" in r.stderr
    tether(workspace, "status", check=2)  # missing job id
    tether(workspace, "status", "abc", check=2)


def test_submit_status_jobs_cancel(workspace):
    r = tether(workspace, "submit", spec_file(), check=0)
    assert r.stdout.strip() == "job 1 submitted"
    r = tether(workspace, "status", "1", check=0)
    assert "job 1 (cli-job): queued" in r.stdout and "unschedulable" in r.stdout
    r = tether(workspace, "--json", "status", "1", check=0)
    assert json.loads(r.stdout)["state"] == "queued"
    r = tether(workspace, "jobs", check=0)
    assert "cli-job" in r.stdout and "queued" in r.stdout
    r = tether(workspace, "jobs", "--json", "--state", "queued", check=0)
    assert [j["id"] for j in json.loads(r.stdout)["jobs"]] == [1]
    r = tether(workspace, "cancel", "1", check=0)
    assert "cancelled" in r.stdout
    r = tether(workspace, "cancel", "1", check=6)
    assert "already ended" in r.stderr


def test_submit_refuses_a_bad_spec_before_upload(workspace):
    r = tether(workspace, "submit", spec_file(resources={"cpus": "x"}), check=6)
    assert "resources.cpus" in r.stderr
    assert workspace.api("GET", "/api/v1/jobs")[2]["jobs"] == []
    tether(workspace, "submit", "/nonexistent.json", check=1)


def test_exit_codes_for_errors(workspace):
    tether(workspace, "status", "42", check=5)
    r = tether(workspace, "jobs", env={"TETHER_TOKEN": "tw_bad"}, check=4)
    assert "401" in r.stderr
    r = tether(workspace, "jobs", env={"TETHER_WORKSPACE": "https://127.0.0.1:1"}, check=3)
    assert "cannot reach" in r.stderr
    # TLS without the CA: refused
    e = {"TETHER_CA": ""}
    r = tether(workspace, "jobs", env=e, check=3)
    # plain http only to loopback
    r = tether(workspace, "jobs", env={"TETHER_WORKSPACE": "http://example.com"}, check=1)
    assert "loopback" in r.stderr
    tether(workspace, "jobs", env={"TETHER_WORKSPACE": workspace.plain_url}, check=0)
    r = tether(workspace, "jobs", use_env=False, check=2)
    assert "no workspace" in r.stderr


def test_flags_and_config_file(workspace):
    cfg = tmpdir()
    os.makedirs(os.path.join(cfg, "tether"))
    tokfile = os.path.join(cfg, "tok")
    with open(tokfile, "w") as f:
        f.write(workspace.admin_token + "\n")
    with open(os.path.join(cfg, "tether", "cli.conf"), "w") as f:
        f.write(f"workspace = {workspace.url}\ntoken_file = {tokfile}\n"
                f"ca_file = {workspace.ca_file}\n")
    tether(workspace, "jobs", use_env=False, env={"XDG_CONFIG_HOME": cfg}, check=0)
    # flags win over the environment
    tether(workspace, "--workspace", workspace.url, "--token", workspace.admin_token,
           "--ca", workspace.ca_file, "jobs", env={"TETHER_TOKEN": "bad"}, check=0)
    tether(workspace, "jobs", "--token=bad", check=4)


def test_token_create_and_agents(workspace):
    r = tether(workspace, "token", "create", "--uses", "2", "--ttl", "10m",
               "--label", "gpu", check=0)
    tok = r.stdout.strip()
    assert tok.startswith("tr_")
    lst = workspace.api("GET", "/api/v1/tokens")[2]["tokens"]
    assert lst[0]["uses_left"] == 2 and lst[0]["labels"] == ["gpu"]
    st, _, b = workspace.api("POST", "/api/v1/agents/register", token=tok,
                             json={"name": "node-7", "capacity": {"cpus": 4}})
    assert st == 201
    r = tether(workspace, "agents", check=0)
    assert "node-7" in r.stdout and "online" in r.stdout and "gpu" in r.stdout
    r = tether(workspace, "agents", "--json", check=0)
    assert json.loads(r.stdout)["agents"][0]["name"] == "node-7"
    r = tether(workspace, "agents", "drain", "node-7", check=0)
    assert "draining" in r.stdout
    r = tether(workspace, "agents", "revoke", "node-7", check=0)
    assert "revoked" in r.stdout
    assert workspace.api("POST", "/api/v1/agents/lease", json={}, token=b["secret"])[0] == 401
    tether(workspace, "agents", "revoke", "nobody", check=5)
    tether(workspace, "token", "create", "--uses", "zero", check=2)
    tether(workspace, "token", check=2)


def run_job(ws, sec, job, attempt=1, log=b"hello\n", reason="succeeded", outputs=None):
    ws.append(sec, job, attempt, 0, log)
    for path, data in (outputs or {}).items():
        st, _, _ = ws.api("PUT", f"/api/v1/attempts/{job}/{attempt}/outputs/{path}",
                          data=data, token=sec,
                          headers={"Tether-Sha256": hashlib.sha256(data).hexdigest()})
        assert st == 201
    assert ws.finish(sec, job, attempt, reason=reason)[0] == 200


def test_logs_and_outputs_download(workspace):
    sec = workspace.register()
    jid = workspace.submit({"name": "o", "command": ["true"]})
    workspace.lease(sec)
    outs = {"model.pt": os.urandom(5000), "sub/dir/metrics.json": b'{"acc": 1}'}
    run_job(workspace, sec, jid, log=b"line 1\nline 2\n", outputs=outs)
    r = tether(workspace, "logs", str(jid), check=0)
    assert r.stdout == "line 1\nline 2\n"
    r = tether(workspace, "logs", "-f", str(jid), check=0, timeout=20)
    assert r.stdout == "line 1\nline 2\n"
    r = tether(workspace, "outputs", str(jid), check=0)
    assert "model.pt" in r.stdout and "sub/dir/metrics.json" in r.stdout
    d = tmpdir()
    r = tether(workspace, "outputs", str(jid), "--download", d, check=0)
    for p, data in outs.items():
        with open(os.path.join(d, p), "rb") as f:
            assert f.read() == data
    r = tether(workspace, "outputs", "--json", str(jid), check=0)
    assert len(json.loads(r.stdout)["outputs"]) == 2
    tether(workspace, "logs", "999", check=5)


@pytest.mark.parametrize("reason,code", [("succeeded", 0), ("failed", 1), ("oom", 1),
                                         ("cancelled", 7)])
def test_submit_follow_exits_with_the_job_result(workspace, reason, code):
    sec = workspace.register()

    def agent():
        got = workspace.lease(sec, wait=20)["jobs"]
        job = got[0]["job"]
        run_job(workspace, sec, job, log=b"training...\ndone\n", reason=reason)
    th = threading.Thread(target=agent)
    th.start()
    r = tether(workspace, "submit", spec_file(), "--follow", timeout=30)
    th.join(10)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert r.stdout == "training...\ndone\n"
    assert f"job 1: {reason}" in r.stderr


def test_logs_follow_crosses_to_the_next_attempt():
    from harness.workspace import Workspace
    ws = Workspace(lease_ttl="1s", lost_grace="300ms", lost_margin="200ms").start()
    sec = ws.register()
    jid = ws.submit({"name": "f", "command": ["true"], "retries": 1})
    ws.lease(sec)
    ws.append(sec, jid, 1, 0, b"first attempt\n")
    res = {}
    th = threading.Thread(target=lambda: res.update(
        r=tether(ws, "logs", "-f", str(jid), timeout=40)))
    th.start()
    # attempt 1 lapses; attempt 2 runs and succeeds
    from harness.common import wait_until
    wait_until(lambda: ws.job(jid)["state"] == "queued", 10)
    assert ws.lease(sec)["jobs"][0]["attempt"] == 2
    run_job(ws, sec, jid, attempt=2, log=b"second attempt\n")
    th.join(30)
    r = res["r"]
    assert r.returncode == 0, r.stderr
    assert r.stdout == "first attempt\nsecond attempt\n"
    assert "following attempt 2" in r.stderr
    ws.stop()


def test_status_prints_sizes_in_binary_units(workspace):
    sec = workspace.register()
    j = workspace.submit({"name": "units", "command": ["true"]})
    workspace.lease(sec)
    workspace.append(sec, j, 1, 0, b"x" * 3000)
    final = {"seq": 1, "time": 2.0, "type": "final", "reason": "succeeded",
             "exit_code": 0, "signal": None, "peak_memory_bytes": 590148000,
             "cpu_seconds": 1.23456, "durations": {"run": 0.5}}
    assert workspace.events(sec, j, 1, [final])[0] == 200
    out = tether(workspace, "status", str(j), check=0).stdout
    assert "peak memory  563 MiB\n" in out, out
    assert "cpu          1.23 s\n" in out, out
    assert "log          2.93 KiB\n" in out, out
    assert "e+" not in out, out
