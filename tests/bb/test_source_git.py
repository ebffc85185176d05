"""Git sources through `tether-runner run`: local bare repos at a pinned
commit, the per-node mirror cache, https with a token (git http-backend over
TLS on loopback), ssh with a deploy key (a real sshd), and the failures."""
import os
import threading

import pytest

from harness.common import tmpdir
from harness.gitserver import (GitHttps, GitSshd, add_commit, git, make_repo,
                               phase_end, run_attempt)


def root_dir():
    d = tmpdir("tether-src-")
    os.chmod(d, 0o755)  # the job user reads the work dir below it
    return d


def spec(source, command=("/bin/cat", "hello.txt"), **kw):
    s = {"name": "src", "command": list(command), "source": source}
    s.update(kw)
    return s


def mirror_dir(root):
    g = os.path.join(root, "state", "git")
    (name,) = [n for n in os.listdir(g) if n.endswith(".git")]
    return os.path.join(g, name)


def test_pinned_commit_runs_that_commit():
    root = root_dir()
    bare, ids, _ = make_repo(root, commits=3)
    att = run_attempt(root, spec({"git": {"url": bare, "commit": ids[1]}}))
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "hello 1\n" in att["log"]
    assert phase_end(att, "source")["commit"] == ids[1]
    # an abbreviated commit resolves to the same full id
    att = run_attempt(root, spec({"git": {"url": bare, "commit": ids[0][:10]}}),
                      job="2")
    assert "hello 0\n" in att["log"]
    assert phase_end(att, "source")["commit"] == ids[0]


def test_second_job_reuses_the_mirror():
    root = root_dir()
    bare, ids, work = make_repo(root, commits=20,
                                files={"hello.txt": "hello {i}\n",
                                       "data/f{i}.txt": "x{i}\n" * 50})
    first = run_attempt(root, spec({"git": {"url": bare, "ref": "main"}}))
    assert first["result"]["reason"] == "succeeded", first["log"]
    assert "hello 19\n" in first["log"]
    assert "new mirror" in first["log"]
    mirror = mirror_dir(root)
    ino = os.stat(os.path.join(mirror, "objects")).st_ino

    # the same pinned commit again: the mirror has it, nothing is fetched
    again = run_attempt(root, spec({"git": {"url": bare, "commit": ids[-1]}}),
                        job="2")
    assert again["result"]["reason"] == "succeeded"
    assert "mirror already has commit" in again["log"]
    assert "received" not in again["log"] and "new mirror" not in again["log"]

    # one new commit: the next fetch brings only the new objects
    new = add_commit(work, bare, "hello.txt", "hello new\n")
    third = run_attempt(root, spec({"git": {"url": bare}}), job="3")
    assert third["result"]["reason"] == "succeeded", third["log"]
    assert "hello new\n" in third["log"]
    assert phase_end(third, "source")["commit"] == new
    first_n = int(first["log"].split("fetched")[1].split(":")[1].split()[0])
    third_n = int(third["log"].split("fetched")[1].split(":")[1].split()[0])
    assert first_n > 60 and third_n <= 3, (first_n, third_n)
    assert "new mirror" not in third["log"]
    assert os.stat(os.path.join(mirror, "objects")).st_ino == ino
    # no second clone: the job's checkout has no objects of its own
    assert not os.path.exists(os.path.join(third["dir"], "work", ".git"))


def test_concurrent_jobs_share_the_mirror():
    root = root_dir()
    bare, ids, _ = make_repo(root, commits=2)
    procs = [run_attempt(root, spec({"git": {"url": bare, "ref": "main"}}),
                         job=str(i), wait=False) for i in (1, 2)]
    for p in procs:
        p.wait(120)
    logs = [open(os.path.join(root, "state", "jobs", str(i), "1", "log")).read()
            for i in (1, 2)]
    assert all("hello 1\n" in log for log in logs), logs
    assert sum("new mirror" in log for log in logs) == 1, logs


def test_wrong_commit_fails_saying_why():
    root = root_dir()
    bare, ids, _ = make_repo(root)
    att = run_attempt(root, spec({"git": {"url": bare, "commit": "deadbeef" * 5}}))
    assert att["result"]["reason"] == "source_failed"
    msg = att["result"]["message"]
    assert "commit deadbeef" in msg and "is not in" in msg, msg
    att = run_attempt(root, spec({"git": {"url": bare, "ref": "nosuchbranch"}}),
                      job="2")
    assert att["result"]["reason"] == "source_failed"
    assert "nosuchbranch" in att["result"]["message"]


def make_super(root):
    """lib.git, and proj.git whose commit has lib.git as submodule 'lib'."""
    lib, lib_ids, _ = make_repo(root, name="lib.git",
                                files={"lib.txt": "lib {i}\n"}, commits=2)
    bare, ids, work = make_repo(root, name="proj.git")
    git("-c", "protocol.file.allow=always", "submodule", "add", "-q",
        "../lib.git", "lib", cwd=work)
    git("-C", "lib", "checkout", "-q", lib_ids[0], cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "add lib", cwd=work)
    git("push", "-q", bare, "main", cwd=work)
    return bare, lib_ids


def test_submodules_when_asked():
    root = root_dir()
    bare, lib_ids = make_super(root)
    cat = ("/bin/sh", "-c", "cat hello.txt lib/lib.txt")
    att = run_attempt(root, spec({"git": {"url": bare, "submodules": True}},
                                 command=cat))
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "lib 0\n" in att["log"]  # the recorded commit, not lib's head
    assert f"submodule lib (lib) at {lib_ids[0][:12]}" in att["log"]
    # without asking: said in the log, not checked out
    att = run_attempt(root, spec({"git": {"url": bare}}, command=cat), job="2")
    assert att["result"]["reason"] == "failed"
    assert "source.git.submodules is false: they are not checked out" \
        in att["log"]


def test_file_url_and_submodules_are_mentioned():
    root = root_dir()
    bare, ids, _ = make_repo(root, files={
        "hello.txt": "hi\n",
        ".gitmodules": '[submodule "lib"]\n\tpath = lib\n\turl = ../lib.git\n'})
    att = run_attempt(root, spec({"git": {"url": "file://" + bare}}))
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "submodules" in att["log"] and "not checked out" in att["log"]


@pytest.fixture
def https_git():
    root = root_dir()
    bare, ids, _ = make_repo(os.path.join(root), name="proj.git", commits=2)
    srv = GitHttps(root, token="s3cret-token")
    yield root, srv, ids
    srv.stop()


def test_https_with_token(https_git):
    root, srv, ids = https_git
    s = spec({"git": {"url": srv.url("proj.git"), "ref": "main",
                      "token_secret": "GIT_TOKEN"}},
             secrets={"GIT_TOKEN": "s3cret-token"})
    att = run_attempt(root, s, settings={"git_ca_file": srv.cert})
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "hello 1\n" in att["log"]
    assert phase_end(att, "source")["commit"] == ids[1]
    assert "s3cret-token" not in att["log"]
    assert any("git-upload-pack" in r[1] for r in srv.requests)


def test_remote_repo_cannot_name_local_submodules(https_git):
    root, srv, ids = https_git
    work = os.path.join(root, "proj.git.work")
    with open(os.path.join(work, ".gitmodules"), "w") as f:
        f.write('[submodule "m"]\n\tpath = m\n\turl = /etc\n')
    git("add", ".gitmodules", cwd=work)
    # record a gitlink at m (any commit id will do for the refusal)
    git("update-index", "--add", "--cacheinfo", f"160000,{ids[0]},m", cwd=work)
    git("commit", "-q", "-m", "evil", cwd=work)
    git("push", "-q", os.path.join(root, "proj.git"), "main", cwd=work)
    s = spec({"git": {"url": srv.url("proj.git"), "token_secret": "GIT_TOKEN",
                      "submodules": True}},
             secrets={"GIT_TOKEN": "s3cret-token"})
    att = run_attempt(root, s, settings={"git_ca_file": srv.cert})
    assert att["result"]["reason"] == "source_failed", att["log"]
    assert "'/etc' is a local path" in att["result"]["message"]


def test_https_wrong_token_or_untrusted_cert(https_git):
    root, srv, ids = https_git
    src = {"git": {"url": srv.url("proj.git"), "token_secret": "GIT_TOKEN"}}
    att = run_attempt(root, spec(src, secrets={"GIT_TOKEN": "wrong"}),
                      settings={"git_ca_file": srv.cert})
    assert att["result"]["reason"] == "source_failed"
    assert "authentication failed" in att["result"]["message"]
    assert "GIT_TOKEN" in att["result"]["message"]
    # no token at all
    att = run_attempt(root, spec({"git": {"url": srv.url("proj.git")}}),
                      settings={"git_ca_file": srv.cert}, job="2")
    assert att["result"]["reason"] == "source_failed"
    assert "token_secret" in att["result"]["message"]
    # the right token, but the server's certificate is not trusted
    att = run_attempt(root, spec(src, secrets={"GIT_TOKEN": "s3cret-token"}),
                      job="3")
    assert att["result"]["reason"] == "source_failed"
    assert "not trusted" in att["result"]["message"], att["result"]["message"]


@pytest.fixture
def ssh_git():
    root = root_dir()
    bare, ids, _ = make_repo(root, name="proj.git", commits=2)
    srv = GitSshd()
    yield root, srv, bare, ids
    srv.stop()


def test_ssh_with_deploy_key(ssh_git):
    root, srv, bare, ids = ssh_git
    kh = srv.known_hosts(os.path.join(root, "known_hosts"))
    s = spec({"git": {"url": srv.url(bare), "commit": ids[0],
                      "ssh_key_secret": "DEPLOY_KEY"}},
             secrets={"DEPLOY_KEY": srv.private_key()})
    att = run_attempt(root, s, settings={"known_hosts": kh})
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "hello 0\n" in att["log"]
    assert phase_end(att, "source")["commit"] == ids[0]


def test_ssh_unknown_or_changed_host_key(ssh_git):
    root, srv, bare, ids = ssh_git
    s = spec({"git": {"url": srv.url(bare), "ssh_key_secret": "DEPLOY_KEY"}},
             secrets={"DEPLOY_KEY": srv.private_key()})
    empty = os.path.join(root, "known_hosts_empty")
    open(empty, "w").close()
    att = run_attempt(root, s, settings={"known_hosts": empty})
    assert att["result"]["reason"] == "source_failed"
    msg = att["result"]["message"]
    assert "unknown host [127.0.0.1]:%d" % srv.port in msg, msg
    # a known_hosts entry with another key: refused as changed
    other = os.path.join(root, "other_key")
    git_kh = os.path.join(root, "known_hosts_other")
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    kind, key = open(other + ".pub").read().split()[:2]
    with open(git_kh, "w") as f:
        f.write(f"[127.0.0.1]:{srv.port} {kind} {key}\n")
    att = run_attempt(root, s, settings={"known_hosts": git_kh}, job="2")
    assert att["result"]["reason"] == "source_failed"
    assert "does not match" in att["result"]["message"]


def test_fetch_into_an_up_to_date_mirror_says_so():
    # a branch fetched again with nothing new: not "0 objects received
    # (0 bytes), 0 already in the mirror"
    root = root_dir()
    bare, ids, _ = make_repo(root, commits=2)
    first = run_attempt(root, spec({"git": {"url": bare, "ref": "main"}}))
    assert first["result"]["reason"] == "succeeded", first["log"]
    again = run_attempt(root, spec({"git": {"url": bare, "ref": "main"}}),
                        job="2")
    assert again["result"]["reason"] == "succeeded", again["log"]
    assert "mirror already up to date" in again["log"], again["log"]
    assert "0 objects received" not in again["log"]
    assert "already in the mirror" not in again["log"]


def test_gitmodules_include_is_refused():
    """libgit2 follows `[include] path = …` in a config file; git does not
    in .gitmodules.  The root runner parsed the repository's .gitmodules
    with includes on: a path naming a FIFO blocked it for ever (and a host
    file's values reached the log).  Refused at once, naming why."""
    root = root_dir()
    fifo = os.path.join(root, "evil.fifo")
    os.mkfifo(fifo)
    bare, ids, _ = make_repo(root, files={
        "hello.txt": "hi\n",
        ".gitmodules": f'[Include]\n\tpath = {fifo}\n'
                       '[submodule "lib"]\n\tpath = lib\n\turl = ../lib.git\n'})
    att = run_attempt(root, spec({"git": {"url": "file://" + bare,
                                          "submodules": True}}), timeout=60)
    assert att["result"]["reason"] == "source_failed", att["log"]
    assert "[include] section" in att["result"]["message"], att["result"]


def _tree_bomb(root, fanout=40, levels=4):
    """A bare repo of a few KiB whose tree names one subtree `fanout` times
    per level: fanout**levels empty files (2.5 M here), 0 blob bytes."""
    import subprocess
    bare = os.path.join(root, "bomb.git")
    git("init", "-q", "--bare", bare)

    def run(args, data):
        return subprocess.run(["git", *args], cwd=bare, input=data,
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    blob = run(["hash-object", "-w", "--stdin"], "")
    entries = "".join(f"100644 blob {blob}\tf{i}\n" for i in range(fanout))
    tree = run(["mktree"], entries)
    for _ in range(levels - 1):
        tree = run(["mktree"], "".join(f"040000 tree {tree}\td{i}\n"
                                       for i in range(fanout)))
    commit = git("commit-tree", tree, "-m", "bomb", cwd=bare)
    git("update-ref", "refs/heads/main", commit, cwd=bare)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=bare)
    return bare


def test_tree_naming_one_subtree_many_times_is_bounded():
    """Blob bytes alone do not bound a checkout: the entries do.  Without
    an entry bound the root runner wrote millions of empty files (the state
    dir's inodes) and never looked at cancel or the lease."""
    root = root_dir()
    bare = _tree_bomb(root)
    # snapshot_max_entries 20000 (default 1,000,000): the same refusal,
    # without writing a million files first.
    att = run_attempt(root, spec({"git": {"url": "file://" + bare}}),
                      settings={"snapshot_max_entries": 20000}, timeout=60)
    assert att["result"]["reason"] == "source_failed", att["log"]
    assert "snapshot_max_entries" in att["result"]["message"], att["result"]


def test_cancel_stops_a_long_checkout():
    """A checkout of millions of entries honours cancel (checked once a
    second while writing)."""
    import time
    from harness.gitserver import cancel_when
    root = root_dir()
    bare = _tree_bomb(root)
    p = run_attempt(root, spec({"git": {"url": "file://" + bare}}),
                    wait=False)
    d = os.path.join(root, "state", "jobs", "1", "1")
    started = os.path.join(d, "work", "d0")

    def well_into_it():  # a second into writing 2.5 M files
        if not os.path.isdir(started):
            return False
        time.sleep(1)
        return True
    att = cancel_when(p, d, well_into_it, timeout=30)
    assert att["result"]["reason"] == "cancelled", att["log"]


def test_cancel_while_waiting_for_the_mirror_lock():
    """A job waiting for the mirror's lock (another job fetching the same
    repository; here the test holds it) stops on cancel within seconds."""
    import fcntl
    import hashlib
    from harness.gitserver import cancel_when, log_has
    root = root_dir()
    bare, ids, _ = make_repo(root)
    url = "file://" + bare
    gitdir = os.path.join(root, "state", "git")
    os.makedirs(gitdir, exist_ok=True)
    lock = open(os.path.join(
        gitdir, hashlib.sha256(url.encode()).hexdigest() + ".lock"), "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        p = run_attempt(root, spec({"git": {"url": url}}), wait=False)
        d = os.path.join(root, "state", "jobs", "1", "1")
        att = cancel_when(p, d, log_has(d, "waiting for the mirror"))
        assert att["result"]["reason"] == "cancelled", att["log"]
    finally:
        lock.close()
