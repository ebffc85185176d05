"""`tether-agent images bootstrap NAME --packages ...` (issue 18): a Docker
base image made on a node without a registry from the node's own Debian
packages (debootstrap from the mirror of its apt sources, docker import),
with pip in it; a failed bootstrap leaves no image and no scratch tree.
debootstrap is slow: the tests pass --cache (the harness's cache directory,
/var/cache/tether-test), so a rerun skips it, as the test base image does."""
import glob
import os
import uuid

from harness import baseimage, dockerd
from harness.agent import Agent


def _bootstrap(ag, name, *pkgs):
    return ag.cmd("images", "bootstrap", name, "--packages", *pkgs,
                  "--cache", baseimage.CACHE_DIR, check=False, timeout=1800)


def test_bootstrap_makes_image_with_pip(docker_engine, monkeypatch):
    monkeypatch.setenv("DOCKER_API_VERSION", dockerd.api_version())
    ag = Agent(None, docker_socket=docker_engine)  # the test engine
    name = "tether-boot-%s:bookworm" % uuid.uuid4().hex[:8]
    r = _bootstrap(ag, name, "python3-six")
    try:
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.strip() == name
        assert "debootstrap" in r.stderr or "using " in r.stderr
        out = dockerd.cli("run", "--rm", "--network", "none", name,
                          "python3", "-c",
                          "import six, pip; print('ok', pip.__version__)")
        assert "ok " in out.stdout
        cached = glob.glob(os.path.join(baseimage.CACHE_DIR,
                                        "rootfs-bookworm-*.tar"))
        assert cached
    finally:
        dockerd.cli("rmi", name, check=False)


def test_failed_bootstrap_leaves_nothing(docker_engine, monkeypatch):
    monkeypatch.setenv("DOCKER_API_VERSION", dockerd.api_version())
    ag = Agent(None, docker_socket=docker_engine)
    name = "tether-boot-bad-%s:bookworm" % uuid.uuid4().hex[:8]
    before = set(glob.glob("/var/tmp/tether-bootstrap.*"))
    r = _bootstrap(ag, name, "no-such-package-tether")
    assert r.returncode == 1, r.stderr[-3000:]
    assert "debootstrap failed" in r.stderr, r.stderr[-3000:]
    assert dockerd.cli("image", "inspect", name,
                       check=False).returncode != 0
    assert set(glob.glob("/var/tmp/tether-bootstrap.*")) <= before
    # bad arguments: usage, exit 2
    assert ag.cmd("images", "bootstrap", check=False).returncode == 2
    assert ag.cmd("images", "bootstrap", name, "--packages", "a;b",
                  check=False).returncode == 2
