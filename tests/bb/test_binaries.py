"""Every binary answers --help and --version, and exits 2 on a bad flag, both
from the build tree and from an installed tree (cmake --install)."""
import os
import subprocess

import pytest

from harness.common import BUILD_DIR, binary, run, tmpdir

BINARIES = ["tether-agent", "tether-runner", "tether-workspace", "tether"]


def check_binary(path):
    r = run([path, "--help"])
    assert "usage:" in r.stdout.lower()
    r = run([path, "--version"])
    assert "0.1.0" in r.stdout
    r = subprocess.run([path, "--no-such-flag"], capture_output=True, text=True)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("name", BINARIES)
def test_build_tree(name):
    check_binary(binary(name))


def test_installed_tree():
    prefix = tmpdir()
    run(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
    for name in BINARIES:
        path = os.path.join(prefix, "bin", name)
        assert os.access(path, os.X_OK), path
        check_binary(path)
