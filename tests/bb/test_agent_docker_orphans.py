"""Orphan job containers at agent start (docs/docker.md, Orphans): a
container labelled for this state dir whose attempt agent.db does not know
is removed; one of an attempt the agent still holds is kept."""
import json
import os
import signal

from harness import dockerd
from harness.agent import Agent
from harness.baseimage import BASE_IMAGE
from harness.common import wait_until


def _container(state_dir, job, attempt):
    body = {"Image": BASE_IMAGE, "Cmd": ["true"],
            "Labels": {"tether.state_dir": state_dir, "tether.job": job,
                       "tether.attempt": str(attempt)}}
    st, c = dockerd.api("POST", "/containers/create", body)
    assert st == 201, c
    return c["Id"]


def _runner_pid(ag, job):
    """The runner's pid from state.json, 0 before the runner wrote it."""
    try:
        with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
            return json.load(f).get("runner_pid") or 0
    except (OSError, ValueError):
        return 0


def test_orphan_container_removed_known_kept(tmp_path, docker_base):
    ag = Agent(None, max_jobs=1, docker_socket=dockerd.SOCKET)
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"name": "keep", "command": ["sleep", "30"]}))
    ag.start()
    job = ag.cmd("submit", str(spec)).stdout.strip()
    # `running` is committed before the runner is forked: wait for the
    # runner's own record, or a kill -9 may come before it exists
    wait_until(lambda: ag.local_state(job) == "running" and
               _runner_pid(ag, job) > 0, 30, what="the local job's runner")
    ag.kill9()  # its runner keeps running: the attempt stays known
    orphan = _container(ag.state_dir, "GHOST", 3)
    kept = _container(ag.state_dir, job, 1)
    other = _container(ag.state_dir + "-other", "GHOST", 3)
    try:
        ag.start()
        assert not dockerd.container_exists(orphan), ag.output()
        assert "removing orphan container" in ag.output()
        assert dockerd.container_exists(kept)
        assert dockerd.container_exists(other)
    finally:
        pid = _runner_pid(ag, job)
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
        for c in (orphan, kept, other):
            dockerd.api("DELETE", "/containers/%s?force=1" % c)
        if ag.alive():
            ag.kill9()
