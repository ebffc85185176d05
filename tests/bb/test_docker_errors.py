"""Docker failures say what is wrong: a dead engine socket, the docker
launcher without a docker environment, a Dockerfile missing from the
source, a failing build step."""
import re

from harness import dockerd
from harness import runner as hr


def run(d):
    r = hr.run_runner(d, timeout=120)
    return hr.result(d), hr.log(d).decode(errors="replace"), r


def test_dead_engine_socket(docker_base, tmp_path):
    dead = str(tmp_path / "no-docker.sock")
    d = dockerd.docker_attempt(["true"], job="D-dead",
                               runner={"docker_socket": dead})
    res, log, r = run(d)
    assert res["reason"] == "env_failed", res
    assert "docker engine at %s not reachable" % dead in res["message"]


def test_docker_launcher_needs_docker_env(docker_base):
    d = dockerd.docker_attempt(["true"], job="D-noenv",
                               spec={"environment": None})
    res, log, r = run(d)
    assert res["reason"] == "launch_failed", res
    assert "environment.kind" in res["message"]


def test_missing_dockerfile(docker_base):
    d = dockerd.docker_attempt(
        ["true"], job="D-nodf",
        spec={"environment": {"kind": "docker", "dockerfile": "nope/Dockerfile"}})
    res, log, r = run(d)
    assert res["reason"] == "env_failed", res
    assert "nope/Dockerfile is not a file in the source" in res["message"]


def test_failing_build_step(docker_base):
    d = dockerd.docker_attempt(
        ["true"], job="D-badrun",
        dockerfile="FROM tether-test-base:bookworm\nRUN echo boom-%s && false\n"
        % id(run))
    res, log, r = run(d)
    assert res["reason"] == "env_failed", res
    assert "docker build Dockerfile" in res["message"]
    assert "returned a non-zero code: 1" in res["message"], res["message"]
    assert "[env] boom-" in log


def test_failed_build_leaves_no_dangling_image(docker_base):
    """Steps before the failing one committed images; a failed build
    removes them (none is left untagged in the engine)."""
    d = dockerd.docker_attempt(
        ["true"], job="D-dangle",
        dockerfile="FROM tether-test-base:bookworm\n"
        "RUN echo one-%s > /one\nRUN echo two > /two\nRUN false\n"
        % hr.state_dir())
    res, log, r = run(d)
    assert res["reason"] == "env_failed", res
    steps = re.findall(r"---> ([0-9a-f]{12})$", log, re.M)
    assert len(steps) >= 3, log  # the base, and the two steps that worked
    for img in steps[1:]:
        r = dockerd.cli("image", "inspect", img, check=False)
        assert r.returncode != 0, f"image {img} of the failed build is left"
    assert "image(s) of the failed build" in log, log
    assert dockerd.cli("image", "inspect", steps[0],
                       check=False).returncode == 0  # FROM's image kept
