"""The test base image, built once and cached between runs.

`ensure_rootfs_tarball()` debootstraps a minimal bookworm (Debian's archive is
reachable here) and caches the rootfs as a tarball under
/var/cache/tether-test/, keyed by the package list; `ensure_base_image()`
`docker import`s it as tether-test-base:bookworm.  Later runs (and CI) reuse
the tarball, and the image when the engine still has it."""
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile

CACHE_DIR = os.environ.get("TETHER_TEST_CACHE", "/var/cache/tether-test")
BASE_IMAGE = "tether-test-base:bookworm"
DEFAULT_INCLUDE = ["python3"]
MIRROR = os.environ.get("TETHER_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def _key(include):
    return hashlib.sha256(",".join(sorted(include)).encode()).hexdigest()[:12]


def ensure_rootfs_tarball(include=None, suite="bookworm", timeout=1800):
    """Path of a cached rootfs tarball of `debootstrap --variant=minbase`
    with the packages in include; built once under a lock."""
    include = sorted(set(include or DEFAULT_INCLUDE))
    os.makedirs(CACHE_DIR, exist_ok=True)
    path = os.path.join(CACHE_DIR, "rootfs-%s-%s.tar" % (suite, _key(include)))
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(path):
            return path
        root = tempfile.mkdtemp(prefix="tether-rootfs-", dir=CACHE_DIR)
        try:
            subprocess.run(["debootstrap", "--variant=minbase",
                            "--include=" + ",".join(include), suite, root, MIRROR],
                           check=True, timeout=timeout, capture_output=True)
            for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(os.path.join(root, d), ignore_errors=True)
            tmp = path + ".tmp"
            subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", tmp, "."],
                           check=True, timeout=600)
            os.rename(tmp, path)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError("debootstrap failed: %s\n%s" % (
                exc, (exc.stderr or b"")[-3000:].decode(errors="replace")))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return path


def ensure_base_image(include=None, tag=BASE_IMAGE):
    """Import the cached rootfs into the test engine as tag (once)."""
    from harness import dockerd
    dockerd.ensure_dockerd()
    if dockerd.image_exists(tag):
        return tag
    tarball = ensure_rootfs_tarball(include)
    dockerd.cli("import", "--change", "CMD [\"/bin/sh\"]", tarball, tag,
                timeout=600)
    return tag
