"""Snapshot sources: the agent puts snapshot.tar.gz into the attempt
directory; `tether-runner run` extracts it into work/ with libarchive's
secure flags.  A good snapshot round-trips byte-exact; each hostile archive
fails with source_failed, a clear reason, and nothing written outside work/."""
import hashlib
import io
import os
import tarfile
import uuid

import pytest

from harness.common import tmpdir
from harness.gitserver import run_attempt

SNAP_ID = "ab" * 32


def attempt_dir(root, job="1"):
    d = os.path.join(root, "state", "jobs", job, "1")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def write_tar(path, add):
    """add(tf) fills a gzip tar at path."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tf:
        add(tf)


def member(tf, name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(ti, k, v)
    if ti.type == tarfile.REGTYPE:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def tree_digest(top):
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            else:
                out[rel] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), top) + "/"] = "dir"
    return out


def run_snapshot(root, add, job="1", settings=None):
    d = attempt_dir(root, job)
    write_tar(os.path.join(d, "snapshot.tar.gz"), add)
    spec = {"name": "snap", "command": ["/bin/true"],
            "source": {"snapshot": SNAP_ID}}
    return run_attempt(root, spec, job=job, settings=settings)


def test_snapshot_round_trips_byte_exact():
    root = tmpdir("tether-snap-")
    os.chmod(root, 0o755)
    src = os.path.join(root, "src")
    files = {"train.py": b"print('hi')\n",
             "a/b/c/deep.bin": bytes(range(256)) * 1000,
             "a/empty.txt": b"",
             "data/ünïcode name.txt": "ü\n".encode(),
             "scripts/run.sh": b"#!/bin/sh\necho run\n"}
    for rel, data in files.items():
        p = os.path.join(src, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "wb").write(data)
    os.chmod(os.path.join(src, "scripts/run.sh"), 0o755)
    os.makedirs(os.path.join(src, "empty/dir"))
    os.symlink("../train.py", os.path.join(src, "scripts/train-link.py"))

    att = run_snapshot(root, lambda tf: tf.add(src, arcname="."))
    assert att["result"]["reason"] == "succeeded", att["log"]
    work = os.path.join(att["dir"], "work")
    assert tree_digest(work) == tree_digest(src)
    assert os.stat(os.path.join(work, "scripts/run.sh")).st_mode & 0o111


def outside_name():
    return os.path.join("/tmp", "tether-outside-" + uuid.uuid4().hex)


HOSTILE = {
    "dotdot": (lambda o: lambda tf: member(tf, "../escaped.txt", b"x"),
               "'..' leads outside"),
    "absolute": (lambda o: lambda tf: member(tf, o, b"x"), "absolute path"),
    "symlink_then_file": (
        lambda o: lambda tf: (member(tf, "evil", type=tarfile.SYMTYPE,
                                     linkname=os.path.dirname(o)),
                              member(tf, "evil/" + os.path.basename(o), b"x")),
        "symlink to"),
    "symlink_inside_then_file": (
        lambda o: lambda tf: (member(tf, "sub", type=tarfile.DIRTYPE),
                              member(tf, "link", type=tarfile.SYMTYPE,
                                     linkname="sub"),
                              member(tf, "link/f", b"x")),
        "symlink"),
    "hardlink_passwd": (
        lambda o: lambda tf: member(tf, "pw", type=tarfile.LNKTYPE,
                                    linkname="/etc/passwd"),
        "hardlink to '/etc/passwd'"),
    "device": (lambda o: lambda tf: member(tf, "null", type=tarfile.CHRTYPE,
                                           devmajor=1, devminor=3),
               "device node"),
    "fifo": (lambda o: lambda tf: member(tf, "pipe", type=tarfile.FIFOTYPE),
             "fifo"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_snapshot_is_refused(case):
    root = tmpdir("tether-snap-")
    os.chmod(root, 0o755)
    outside = outside_name()
    make, why = HOSTILE[case]
    att = run_snapshot(root, make(outside))
    assert att["result"]["reason"] == "source_failed", att["log"]
    assert why in att["result"]["message"], att["result"]["message"]
    assert not os.path.lexists(outside)
    assert not os.path.lexists(os.path.join(att["dir"], "escaped.txt"))
    assert not os.path.lexists(os.path.join(root, "state", "jobs", "1",
                                            "escaped.txt"))
    assert os.listdir(os.path.join(att["dir"], "work")) == []
    assert os.path.getsize("/etc/passwd") > 0


def test_entry_and_size_limits():
    root = tmpdir("tether-snap-")
    os.chmod(root, 0o755)

    def many(tf):
        for i in range(10001):
            member(tf, f"f{i}", b"")
    att = run_snapshot(root, many, settings={"snapshot_max_entries": 10000})
    assert att["result"]["reason"] == "source_failed"
    assert "more than 10000 entries" in att["result"]["message"]
    assert os.listdir(os.path.join(att["dir"], "work")) == []

    att = run_snapshot(root, lambda tf: member(tf, "big", b"\0" * 200000),
                       job="2", settings={"snapshot_max_bytes": 100000})
    assert att["result"]["reason"] == "source_failed"
    assert "snapshot_max_bytes" in att["result"]["message"]


def test_not_a_tarball():
    root = tmpdir("tether-snap-")
    d = attempt_dir(root)
    open(os.path.join(d, "snapshot.tar.gz"), "wb").write(b"garbage" * 100)
    att = run_attempt(root, {"name": "s", "command": ["/bin/true"],
                             "source": {"snapshot": SNAP_ID}})
    assert att["result"]["reason"] == "source_failed"
    assert "not a valid gzip tar" in att["result"]["message"]


def test_missing_snapshot_file():
    root = tmpdir("tether-snap-")
    att = run_attempt(root, {"name": "s", "command": ["/bin/true"],
                             "source": {"snapshot": SNAP_ID}})
    assert att["result"]["reason"] == "source_failed"
    assert "snapshot.tar.gz is missing" in att["result"]["message"]


def test_local_path_is_copied():
    root = tmpdir("tether-snap-")
    os.chmod(root, 0o755)
    src = os.path.join(root, "proj")
    os.makedirs(os.path.join(src, "pkg"))
    open(os.path.join(src, "pkg", "m.py"), "w").write("VALUE = 7\n")
    att = run_attempt(root, {"name": "p", "command": ["/bin/cat", "pkg/m.py"],
                             "source": {"path": src}})
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "VALUE = 7" in att["log"]
    assert tree_digest(os.path.join(att["dir"], "work")) == tree_digest(src)
