"""tether submit --dir: the directory is packed as tar.gz honouring
.gitignore and .tetherignore, uploaded as a snapshot, and the job's source
names it; a directory over the size limit is refused before upload."""
import io
import os
import tarfile

from harness.common import tmpdir
from test_cli_commands import spec_file, tether


def make_tree(files, links=None):
    d = tmpdir()
    for path, data in files.items():
        full = os.path.join(d, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    for path, target in (links or {}).items():
        os.symlink(target, os.path.join(d, path))
    return d


def snapshot_members(ws, jid):
    sid = ws.job(jid)["spec"]["source"]["snapshot"]
    st, _, tgz = ws.api("GET", f"/api/v1/snapshots/{sid}")
    assert st == 200
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as t:
        out = {}
        for m in t.getmembers():
            if m.isfile():
                out[m.name] = t.extractfile(m).read()
            elif m.issym():
                out[m.name] = ("link", m.linkname)
            elif m.isdir():
                out[m.name + "/"] = None
        return out


def test_dir_honours_gitignore_and_tetherignore(workspace):
    d = make_tree({
        "train.py": b"print('train')\n",
        "pkg/model.py": b"x = 1\n",
        "pkg/cache.pyc": b"junk",
        "data/big.bin": b"0" * 1000,
        "logs/run.log": b"log",
        "keep.log": b"kept by negation",
        "build/out.o": b"obj",
        "src/build/notignored.txt": b"anchored pattern only at top",
        ".git/config": b"[core]",
        ".gitignore": b"# comment\n*.pyc\n*.log\n!keep.log\n/build/\nlogs/\n",
        ".tetherignore": b"data/\n",
    }, links={"link-to-train": "train.py"})
    r = tether(workspace, "submit", spec_file(), "--dir", d, check=0)
    assert "uploaded" in r.stderr and "job 1 submitted" in r.stdout
    m = snapshot_members(workspace, 1)
    assert m["train.py"] == b"print('train')\n"
    assert m["pkg/model.py"] == b"x = 1\n"
    assert m["keep.log"] == b"kept by negation"
    assert m["src/build/notignored.txt"]
    assert m["link-to-train"] == ("link", "train.py")
    assert m[".gitignore"] and m[".tetherignore"]
    for gone in ["pkg/cache.pyc", "data/big.bin", "logs/run.log", "build/out.o",
                 ".git/config"]:
        assert gone not in m, gone
    assert not any(k.startswith(("data/", "logs/", ".git/", "build/")) for k in m)


def test_dir_over_the_size_limit_is_refused(workspace):
    d = make_tree({"a.bin": os.urandom(300000)})
    r = tether(workspace, "submit", spec_file(), "--dir", d, "--max-size", "100K", check=6)
    assert "more than" in r.stderr and ".tetherignore" in r.stderr
    assert workspace.api("GET", "/api/v1/jobs")[2]["jobs"] == []
    assert os.listdir(os.path.join(workspace.dir, "blobs")) == []


def test_dir_missing(workspace):
    r = tether(workspace, "submit", spec_file(), "--dir", "/nonexistent-dir", check=1)
    assert "nonexistent-dir" in r.stderr

