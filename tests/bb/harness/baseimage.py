"""The test base image, built once and cached between runs.

`ensure_rootfs_tarball()` debootstraps a minimal bookworm from the mirror in
the machine's own apt sources (`apt_mirror()`) and caches the rootfs as a tarball under
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
APT_SOURCES = ("/etc/apt/sources.list.d", "/etc/apt/sources.list")


def _deb822_mirrors(text):
    """(uri, suites) of the `Types: deb` stanzas of a .sources file."""
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.split()
        if "deb" in fields.get("types", []) and \
                fields.get("enabled", ["yes"])[0] != "no":
            for uri in fields.get("uris", []):
                yield uri, fields.get("suites", [])


def _list_mirrors(text):
    """(uri, [suite]) of the `deb` lines of a sources.list."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            yield words[0], [words[1]]


def apt_mirror(suite="bookworm", sources=APT_SOURCES):
    """The Debian mirror this machine's apt uses for suite (its own
    /etc/apt/sources.list.d/*.sources or *.list, or /etc/apt/sources.list),
    so that no mirror's host name is written into the tree;
    $TETHER_DEBIAN_MIRROR wins."""
    if os.environ.get("TETHER_DEBIAN_MIRROR"):
        return os.environ["TETHER_DEBIAN_MIRROR"]
    files = []
    for src in sources:
        if os.path.isdir(src):
            files += sorted(os.path.join(src, n) for n in os.listdir(src)
                            if n.endswith((".sources", ".list")))
        elif os.path.exists(src):
            files.append(src)
    for path in files:
        with open(path, errors="replace") as f:
            text = f.read()
        found = _deb822_mirrors(text) if path.endswith(".sources") \
            else _list_mirrors(text)
        for uri, suites in found:
            if suite in suites:
                return uri
    raise RuntimeError(f"no apt source for {suite} in {', '.join(sources)}: "
                       "set TETHER_DEBIAN_MIRROR")


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
                            "--include=" + ",".join(include), suite, root,
                            apt_mirror(suite)],
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
