"""tether-agent against the real workspace over TLS on loopback, with the
real runner: registration, one job end to end, credentials."""
import json
import os
import stat

from harness.agent import Agent
from harness.common import wait_until


def test_register_run_job_log_and_status_byte_exact(workspace, agent):
    # Bytes that survive only if nothing re-encodes the log: no trailing
    # newline, invalid UTF-8, NULs, carriage returns.
    script = ("printf 'hello\\r\\n'; printf '\\000\\377\\376 binary'; "
              "seq 1 2000; printf 'no newline at end'")
    job = workspace.submit(name="hello", command=["sh", "-c", script])
    j = agent.wait_job(job, "succeeded", timeout=60)
    a = j["attempts"][-1]
    assert a["exit_code"] == 0
    assert a["agent"] == agent.name
    expected = (b"hello\r\n\x00\xff\xfe binary"
                + "".join(f"{i}\n" for i in range(1, 2001)).encode()
                + b"no newline at end")
    got = agent.ws_log(job)
    # The runner may add its own [tether] lines; the job's bytes must be
    # there exactly and in order, and the node's log file must match.
    with open(os.path.join(agent.attempt_dir(job), "log"), "rb") as f:
        node_log = f.read()
    assert got == node_log
    assert expected in got
    # Registered once, credential private.
    cred = os.path.join(agent.state_dir, "credentials")
    assert stat.S_IMODE(os.stat(cred).st_mode) == 0o600
    st, _, agents = workspace.api("GET", "/api/v1/agents")
    mine = [x for x in agents["agents"] if x["name"] == agent.name]
    assert len(mine) == 1 and mine[0]["state"] == "online"
    assert mine[0]["capacity"]["cpus"] >= 1


def test_credential_never_in_job_env_or_log(workspace, agent):
    with open(os.path.join(agent.state_dir, "credentials")) as f:
        secret = json.load(f)["secret"]
    job = workspace.submit(name="env", command=["sh", "-c", "env; cat /proc/self/environ"])
    agent.wait_job(job, "succeeded", timeout=60)
    log = agent.ws_log(job)
    assert b"PATH" in log or b"HOME" in log
    assert secret.encode() not in log
    assert agent.token.encode() not in log
    assert secret not in agent.output()
    assert agent.token not in agent.output()


def test_second_agent_on_same_state_dir_refuses(workspace, agent):
    other = Agent(workspace, state_dir=agent.state_dir, name=agent.name)
    r = other.cmd("run", check=False, timeout=20)
    assert r.returncode != 0
    assert "another tether-agent" in r.stderr
    assert agent.alive()


def test_restart_reuses_credentials(workspace, agent):
    with open(os.path.join(agent.state_dir, "credentials")) as f:
        first = json.load(f)
    agent.stop()
    agent.start()
    job = workspace.submit(name="again", command=["true"])
    agent.wait_job(job, "succeeded", timeout=60)
    with open(os.path.join(agent.state_dir, "credentials")) as f:
        assert json.load(f) == first


def test_configuration_docs_match_the_keyword_table():
    from harness.common import SOURCE_DIR
    ag = Agent(None)
    ref = ag.cmd("config-reference").stdout
    with open(os.path.join(SOURCE_DIR, "docs", "configuration.md")) as f:
        assert f.read() == ref, \
            "regenerate: tether-agent config-reference > docs/configuration.md"
    # The commented sample is generated from the same table, and parses.
    sample = os.path.join(SOURCE_DIR, "install", "agent.conf.sample")
    with open(sample) as f:
        assert f.read() == ag.cmd("config-sample").stdout, \
            "regenerate: tether-agent config-sample > install/agent.conf.sample"
    ag.cmd("--config", sample, "config-reference")


def test_config_error_names_file_line_and_nearest_key(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text("max_jobs = 2\n# ok\nheartbeat_intervall = 5s\n")
    ag = Agent(None)
    r = ag.cmd("--config", str(conf), "status", check=False)
    assert r.returncode == 2
    assert f"{conf} line 3" in r.stderr
    assert "did you mean 'heartbeat_interval'" in r.stderr


def test_concurrent_attempts_ship_their_logs_independently(workspace,
                                                           agent_factory):
    ag = agent_factory(max_jobs=4, log_chunk="256K").start()
    big = [workspace.submit(name=f"big{i}", command=[
        "sh", "-c", f"seq {i} 3 3000000"]) for i in range(3)]
    small = workspace.submit(name="small", command=["echo", "small"])
    for j in big + [small]:
        ag.wait_job(j, "succeeded", timeout=120)
    for i, j in enumerate(big):
        log = ag.ws_log(j)
        want = ("\n".join(str(n) for n in range(i, 3000001, 3)) + "\n").encode()
        assert want in log
        with open(os.path.join(ag.attempt_dir(j), "log"), "rb") as f:
            assert log == f.read()
    assert b"small\n" in ag.ws_log(small)
