"""tether submit --dir packs deterministically (issue 28): the snapshot id
is the sha256 of the archive, so the same tree must give the same bytes
whatever its files' mtimes, owners, directory order or the time of the
upload; a change in a name, a permission bit, a link or a byte gives
another id."""
import io
import json
import os
import tarfile
import time

from harness.common import tmpdir
from test_cli_commands import spec_file, tether

FILES = [("train.py", b"print('train')\n", 0o755),
         ("pkg/b.py", b"b = 2\n", 0o644),
         ("pkg/a.py", b"a = 1\n", 0o644),
         ("z/y/x.txt", b"deep\n", 0o600),
         ("A.txt", b"upper\n", 0o644)]


def make_tree(files, link=True, mtime=None):
    d = tmpdir()
    for path, data, mode in files:
        full = os.path.join(d, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        os.chmod(full, mode)
        if mtime is not None:
            os.utime(full, (mtime, mtime))
    if link:
        os.symlink("train.py", os.path.join(d, "run"))
    return d


def upload(ws, d):
    r = tether(ws, "--json", "submit", spec_file(), "--dir", d, check=0)
    jid = json.loads(r.stdout)["id"]
    return ws.job(jid)["spec"]["source"]["snapshot"]


def test_same_tree_gives_one_snapshot_id(workspace):
    """Scenario: one directory uploaded twice a second apart (the gzip
    header used to carry the time), then its files touched (new mtimes),
    then a copy of it made in the reverse order elsewhere with other
    mtimes and owners.  Pass: all four uploads give one snapshot id; the
    archive holds the names in byte order, owner root, one fixed mtime,
    and keeps the permission bits and the link."""
    d = make_tree(FILES)
    first = upload(workspace, d)
    time.sleep(1.1)
    assert upload(workspace, d) == first
    for path, _, _ in FILES:
        os.utime(os.path.join(d, path), (1e9, 1e9))
    assert upload(workspace, d) == first
    other = make_tree(list(reversed(FILES)), mtime=1.5e9)
    for root, dirs, files in os.walk(other):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), 1234, 5678)
    assert upload(workspace, other) == first

    st, _, tgz = workspace.api("GET", f"/api/v1/snapshots/{first}")
    assert st == 200
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as t:
        members = t.getmembers()
    names = [m.name for m in members]
    # each directory's names in byte order, a directory before its files
    assert names == ["A.txt", "pkg", "pkg/a.py", "pkg/b.py", "run",
                     "train.py", "z", "z/y", "z/y/x.txt"], names
    assert {m.uid for m in members} == {0} and {m.gid for m in members} == {0}
    assert len({m.mtime for m in members}) == 1
    by = {m.name: m for m in members}
    assert by["train.py"].mode & 0o777 == 0o755
    assert by["z/y/x.txt"].mode & 0o777 == 0o600
    assert by["run"].issym() and by["run"].linkname == "train.py"


def test_a_change_gives_another_id(workspace):
    """Scenario: trees that differ from the first in one byte, one
    permission bit or one link target.  Pass: each gives its own id."""
    base = upload(workspace, make_tree(FILES))
    one_byte = [(p, d.replace(b"1", b"3"), m) for p, d, m in FILES]
    one_bit = [(p, d, 0o644 if p == "train.py" else m) for p, d, m in FILES]
    ids = {base, upload(workspace, make_tree(one_byte)),
           upload(workspace, make_tree(one_bit))}
    d = make_tree(FILES, link=False)
    os.symlink("pkg/a.py", os.path.join(d, "run"))
    ids.add(upload(workspace, d))
    assert len(ids) == 4, ids
