"""A fresh Debian 12 root for the install tests, entered with chroot.

`FreshRoot()` unpacks a cached `debootstrap --variant=minbase bookworm`
(built once by harness/baseimage.py, keyed by its package list) into a
temporary directory.  The package list is Tether's runtime libraries plus
systemd (so that `systemd-analyze verify --root` finds the targets a unit
needs) and procps; systemd is installed but not running, as in a container.

    root = FreshRoot()
    root.run("useradd", ...)        # chroot ROOT useradd ...
    before = root.snapshot()        # paths + contents of the account files
    ...
    assert root.snapshot() == before
"""
import hashlib
import os
import shutil
import subprocess

from harness import baseimage
from harness.common import BUILD_DIR, SOURCE_DIR, run, tmpdir

RUNTIME_PACKAGES = ["libcurl4", "libssh2-1", "libjansson4", "libgit2-1.5",
                    "libcgroup2", "libsqlite3-0", "libmicrohttpd12",
                    "libarchive13", "libssl3", "libprotobuf-c1", "systemd",
                    "procps"]

# What installing and removing a package or a user changes by design and
# is no trace of Tether: dpkg's and the shadow suite's own bookkeeping.
VOLATILE = ("var/lib/dpkg/", "var/log/", "var/cache/", "etc/passwd-",
            "etc/group-", "etc/shadow-", "etc/gshadow-", "etc/subuid",
            "etc/subgid", "etc/.pwd.lock", "var/lib/systemd/", "tmp/",
            "run/", "etc/ld.so.cache")
ACCOUNT_FILES = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow")


def install_script(name="install.sh"):
    return os.path.join(SOURCE_DIR, "install", name)


class FreshRoot:
    def __init__(self):
        tarball = baseimage.ensure_rootfs_tarball(include=RUNTIME_PACKAGES)
        # On disk rather than /tmp: a root is some 300 MB unpacked, and a
        # tmpfs /tmp is often nodev (systemd's tmp.mount, docker --tmpfs),
        # where the root's /dev/null cannot be opened and every `>/dev/null`
        # of a maintainer script fails.
        self.path = os.path.join(tmpdir("tether-freshroot-", base="/var/tmp"),
                                 "root")
        os.makedirs(self.path)
        run(["tar", "-C", self.path, "--numeric-owner", "-xf", tarball],
            timeout=300)

    def p(self, rel):
        """Host path of a path inside the root."""
        return os.path.join(self.path, rel.lstrip("/"))

    def run(self, *argv, check=True, timeout=120, env=None):
        full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                            "/usr/bin:/sbin:/bin", "LC_ALL": "C",
                    "DEBIAN_FRONTEND": "noninteractive"}
        full_env.update(env or {})
        return run(["chroot", self.path] + list(argv), check=check,
                   timeout=timeout, env=full_env)

    def passwd(self, user):
        """The passwd fields of user in the root, or None."""
        with open(self.p("etc/passwd")) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == user:
                    return fields
        return None

    def group(self, name):
        with open(self.p("etc/group")) as f:
            for line in f:
                if line.split(":")[0] == name:
                    return line
        return None

    def snapshot(self):
        """Every path in the root (volatile bookkeeping excluded) and the
        contents of the account files: equal snapshots mean nothing was
        left behind."""
        paths = set()
        for d, dirs, files in os.walk(self.path):
            for n in dirs + files:
                rel = os.path.relpath(os.path.join(d, n), self.path)
                if not rel.startswith(VOLATILE):
                    paths.add(rel)
        accounts = {}
        for rel in ACCOUNT_FILES:
            with open(self.p(rel), "rb") as f:
                accounts[rel] = hashlib.sha256(f.read()).hexdigest()
        return paths, accounts

    def verify_unit(self, unit_path):
        """systemd-analyze verify on a unit inside the root; returns the
        CompletedProcess (rc 0 and no output when the unit is clean)."""
        return run(["systemd-analyze", "verify", "--root=" + self.path,
                    unit_path], check=False, timeout=60)

    def remove(self):
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


def build_package(build_dir=BUILD_DIR):
    """The .deb of this build (cmake --build BUILD --target package), or
    the one $TETHER_DEB names (made earlier, e.g. by CI)."""
    if os.environ.get("TETHER_DEB"):
        return os.environ["TETHER_DEB"]
    run(["cmake", "--build", build_dir, "--target", "package"], timeout=600)
    debs = sorted(n for n in os.listdir(build_dir)
                  if n.startswith("tether_") and n.endswith(".deb"))
    assert debs, "cpack made no tether_*.deb in " + build_dir
    return os.path.join(build_dir, debs[-1])


def diff_snapshots(before, after):
    """Human-readable difference of two snapshots (for assertion messages)."""
    added = sorted(after[0] - before[0])
    removed = sorted(before[0] - after[0])
    changed = [k for k in before[1] if before[1][k] != after[1].get(k)]
    return "left behind: %s; removed: %s; account files changed: %s" % (
        added[:20], removed[:20], changed)


def has_subcommand(binary, name):
    """True when `binary --help` lists subcommand name."""
    r = subprocess.run([binary, "--help"], capture_output=True, text=True,
                       timeout=30)
    text = r.stdout + r.stderr
    return any(line.split()[:1] == [name] for line in text.splitlines())
