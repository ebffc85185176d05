"""The Debian package (cmake --build BUILD --target package) in a fresh
Debian 12 root entered with chroot: dpkg -i installs the binaries, the unit
(enabled), the job user and the directories; an upgrade keeps the config;
dpkg -r keeps only the config, state and user; dpkg --purge leaves the root
as it was."""
import os
import shutil
import stat
import subprocess

import pytest

from harness.common import BUILD_DIR, binary
from harness.freshroot import FreshRoot, build_package, diff_snapshots

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, dpkg)")

UNIT = "usr/lib/systemd/system/tether-agent.service"
WANTS = "etc/systemd/system/multi-user.target.wants/tether-agent.service"


@pytest.fixture(scope="module")
def deb():
    binary("tether-agent")
    return build_package(BUILD_DIR)


@pytest.fixture(scope="module")
def root():
    r = FreshRoot()
    yield r
    r.remove()


def mode(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def dpkg(root, *args):
    return root.run("dpkg", *args, timeout=300)


def test_deb_control(deb):
    info = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True,
                          text=True, check=True).stdout
    depends = [d.strip().split()[0] for line in info.splitlines()
               if line.startswith("Depends:")
               for d in line.split(":", 1)[1].split(",")]
    for lib in ("libcurl4", "libssh2-1", "libjansson4", "libgit2-1.5",
                "libcgroup2", "libsqlite3-0", "libmicrohttpd12", "libarchive13",
                "libssl3", "libpcre2-8-0", "libprotobuf-c1"):
        assert lib in depends, (lib, info)
    files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True,
                           text=True, check=True).stdout
    for path in ("./usr/bin/tether-agent", "./usr/bin/tether-runner",
                 "./usr/bin/tether-runner-full", "./" + UNIT):
        assert path in files, (path, files)
    # nothing of the build machine (absolute build paths, /usr/local)
    assert "/usr/local" not in files and "/tmp/" not in files


def test_deb_install_remove_purge(deb, root):
    before = root.snapshot()
    shutil.copy(deb, root.p("tmp/tether.deb"))
    r = dpkg(root, "-i", "/tmp/tether.deb")
    assert "systemctl start tether-agent.service" in r.stdout + r.stderr
    for b in ("tether-agent", "tether-runner", "tether-runner-full", "tether",
              "tether-workspace"):
        assert mode(root.p("usr/bin/" + b)) == (0o755, 0, 0), b
    pw = root.passwd("tether-job")
    assert pw and 0 < int(pw[2]) < 1000 and pw[6] == "/usr/sbin/nologin", pw
    assert mode(root.p("var/lib/tether")) == (0o700, 0, 0)
    assert mode(root.p("etc/tether")) == (0o755, 0, 0)
    if os.path.exists(root.p("usr/share/tether/agent.conf.sample")):
        assert mode(root.p("etc/tether/agent.conf")) == (0o600, 0, 0)
    with open(root.p(UNIT)) as f:
        unit = f.read()
    assert "ExecStart=/usr/bin/tether-agent " in unit
    assert "KillMode=process" in unit
    assert os.path.islink(root.p(WANTS)), "unit not enabled"
    v = root.verify_unit("/" + UNIT)
    assert v.returncode == 0, v.stdout + v.stderr
    root.run("tether-agent", "--version")  # runs with the root's libraries

    # upgrade (same version again): the admin's config survives
    with open(root.p("etc/tether/agent.conf"), "a") as f:
        f.write("max_jobs = 3\n")
    dpkg(root, "-i", "/tmp/tether.deb")
    with open(root.p("etc/tether/agent.conf")) as f:
        assert "max_jobs = 3\n" in f.read()

    # remove: binaries, unit and enablement go; config, state, user stay
    dpkg(root, "-r", "tether")
    for rel in ("usr/bin/tether-agent", "usr/bin/tether-runner", UNIT, WANTS):
        assert not os.path.lexists(root.p(rel)), rel
    assert os.path.exists(root.p("etc/tether/agent.conf"))
    assert os.path.isdir(root.p("var/lib/tether"))
    assert root.passwd("tether-job")

    # purge: the root is as it was before
    dpkg(root, "--purge", "tether")
    os.unlink(root.p("tmp/tether.deb"))
    after = root.snapshot()
    assert after == before, diff_snapshots(before, after)
