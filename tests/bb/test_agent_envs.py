"""`tether-agent envs` / `envs prune` on the agent's env_dir, and the
look-ahead build (issue 6): while a job waits in the local queue behind a
running one, its environment is built ahead (a spare CPU, the cache lacks
it), so it shows in `tether-agent envs` before the job starts, and the job
then starts with a cache hit."""
import json
import os

from harness.agent import Agent
from harness.common import wait_until


def _envs(ag):
    return json.loads(ag.cmd("envs", "--json").stdout)


def test_lookahead_build_and_envs_commands(tmp_path):
    ag = Agent(None, max_jobs=1, cpus=2)
    ag.start()
    blocker = tmp_path / "blocker.json"
    blocker.write_text(json.dumps({
        "name": "blocker", "resources": {"cpus": 1},
        "command": ["sh", "-c", "while [ ! -e /var/tmp/%s ]; do sleep 0.1;"
                    " done" % (os.path.basename(ag.state_dir) + ".go")]}))
    venv = tmp_path / "venv.json"
    venv.write_text(json.dumps({
        "name": "venv", "environment": {"kind": "venv"},
        "resources": {"cpus": 1},
        "command": ["python", "-c", "import sys; print('prefix', sys.prefix)"]}))
    assert _envs(ag) == []
    first = ag.cmd("submit", str(blocker)).stdout.strip()
    wait_until(lambda: ag.local_state(first) == "running", 30,
               what="the blocker to run")
    second = ag.cmd("submit", str(venv)).stdout.strip()
    release = "/var/tmp/" + os.path.basename(ag.state_dir) + ".go"
    try:
        # Built while the job still waits for the slot.
        envs = wait_until(lambda: _envs(ag), 60, interval=0.5,
                          what="the environment built ahead")
        assert ag.local_state(second) == "queued"
        assert len(envs) == 1 and envs[0]["kind"] == "venv", envs
        assert "building its environment ahead" in ag.output()
        wait_until(lambda: "environment ready ahead" in ag.output(), 30)
    finally:
        open(release, "w").close()
    wait_until(lambda: ag.local_state(second) == "done", 60,
               what="the venv job to finish")
    log = ag.cmd("logs", second).stdout
    assert "[env] cache hit" in log, log
    assert not os.listdir(os.path.join(ag.state_dir, "ahead"))
    # prune --all removes what no job uses.
    r = ag.cmd("envs", "prune", "--all")
    assert "removed 1 environment" in r.stdout, r.stdout
    assert _envs(ag) == []
    assert ag.cmd("envs", "bogus", check=False).returncode == 2
    os.unlink(release)
    assert ag.stop() == 0
