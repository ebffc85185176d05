"""`tether-agent images bootstrap NAME --packages ...` (issue 18): a Docker
base image made on a node without a registry from the node's own Debian
packages (debootstrap from the mirror of its apt sources, docker import),
with pip in it; a failed bootstrap leaves no image and no scratch tree.
debootstrap is slow: the tests pass --cache (the harness's cache directory,
/var/cache/tether-test), so a rerun skips it, as the test base image does."""
import glob
import os
import shutil
import subprocess
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


# mkdtemp's random letters end in 'X' one time in 62: a cleanup that asked
# "is the template's tail still XXXXXX?" kept such a scratch tree (CI left
# /var/tmp/tether-bootstrap.57N3gX).  A preloaded mkdtemp picks that name,
# and a debootstrap that fails at once stands in for the slow real one
# (the cleanup after it is what this test is about).
_MKDTEMP_X = r"""
#include <string.h>
#include <sys/stat.h>
char *mkdtemp(char *t)
{
	size_t n = strlen(t);
	memcpy(t + n - 6, "tst99X", 6);
	return mkdir(t, 0700) == 0 ? t : 0;
}
"""


def test_a_scratch_tree_whose_random_name_ends_in_x_is_removed(
        tmp_path, monkeypatch):
    so, src = tmp_path / "mkx.so", tmp_path / "mkx.c"
    src.write_text(_MKDTEMP_X)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(src)],
                   check=True)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "debootstrap").write_text(
        "#!/bin/sh\nmkdir -p \"$4/debootstrap\"; touch \"$4/debootstrap/x\"\n"
        "echo 'E: Couldn'\"'\"'t find these debs' >&2; exit 1\n")
    (fake / "debootstrap").chmod(0o755)
    scratch = "/var/tmp/tether-bootstrap.tst99X"
    shutil.rmtree(scratch, ignore_errors=True)
    monkeypatch.setenv("PATH", "%s:%s" % (fake, os.environ["PATH"]))
    monkeypatch.setenv("LD_PRELOAD", str(so))
    ag = Agent(None)
    r = ag.cmd("images", "bootstrap", "tether-boot-x:bookworm",
               "--packages", "python3-six", check=False)
    monkeypatch.delenv("LD_PRELOAD")
    assert r.returncode == 1, r.stderr
    assert "debootstrap failed" in r.stderr, r.stderr
    try:
        assert not os.path.exists(scratch), os.listdir(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
