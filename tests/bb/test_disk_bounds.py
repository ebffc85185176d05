"""Bounded disk (issue 19): snapshot bombs and git sources over their bound
end source_failed naming it, with the partial extraction removed."""
import gzip
import io
import os
import tarfile
import time
import zlib

from harness.common import tmpdir
from harness.gitserver import make_repo, run_attempt
from harness.life import upload_snapshot

GiB = 1 << 30
CHUNK = 64 << 20


def _gz_member(data):
    return gzip.compress(data, compresslevel=1)


def gzip_bomb(files, size):
    """A gzip tar of `files` files of `size` zero bytes each, a few MB on the
    wire: one gzip member per tar header, and one compressed 64 MiB chunk
    of zeros repeated as further members (gzip allows concatenation)."""
    assert size % CHUNK == 0
    zc = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = zc.compress(bytes(CHUNK)) + zc.flush()
    out = io.BytesIO()
    for i in range(files):
        ti = tarfile.TarInfo(f"bomb/f{i}")
        ti.size = size
        out.write(_gz_member(ti.tobuf(format=tarfile.GNU_FORMAT)))
        out.write(chunk * (size // CHUNK))
    out.write(_gz_member(bytes(1024)))  # end of archive
    return out.getvalue()


def du(path):
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for n in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                pass
    return total


def test_gzip_bomb_snapshot_ends_source_failed(workspace, agent):
    """Default snapshot_max_bytes (2 GiB): 5 files of 512 MiB unpack past it
    after 2 GiB were written; the job ends source_failed naming the bound
    within seconds and the extraction is gone; the next job runs."""
    bomb = gzip_bomb(5, 512 << 20)
    assert len(bomb) < (8 << 20)
    st, _, b = workspace.api("POST", "/api/v1/snapshots", data=bomb,
                             headers={"Content-Type":
                                      "application/octet-stream"})
    assert st == 201, b
    t0 = time.monotonic()
    job = workspace.submit(name="bomb", command=["true"],
                           source={"snapshot": b["id"]})
    j = agent.wait_job(job, timeout=120)
    took = time.monotonic() - t0
    a = j["attempts"][-1]
    assert a["reason"] == "source_failed", j
    assert "snapshot_max_bytes" in a["message"], j
    print(f"gzip bomb ({len(bomb)} bytes) refused in {took:.1f}s")
    assert took < 60, took  # goal: seconds (bench/ measures)
    d = agent.attempt_dir(job)
    assert os.listdir(os.path.join(d, "work")) == []
    assert not [n for n in os.listdir(d) if "refused" in n]
    assert du(d) < (16 << 20), du(d)

    snap = upload_snapshot(workspace, {"run.sh": b"echo fine\n"})
    ok = workspace.submit(name="after", command=["sh", "run.sh"],
                          source={"snapshot": snap})
    agent.wait_job(ok, "succeeded", timeout=60)
    assert b"fine\n" in agent.ws_log(ok)


def test_single_entry_bomb_refused_before_writing(workspace, agent):
    """One 3 GiB entry: refused on its header, nothing written."""
    bomb = gzip_bomb(1, 3 * GiB)
    st, _, b = workspace.api("POST", "/api/v1/snapshots", data=bomb,
                             headers={"Content-Type":
                                      "application/octet-stream"})
    assert st == 201, b
    job = workspace.submit(name="bomb1", command=["true"],
                           source={"snapshot": b["id"]})
    j = agent.wait_job(job, timeout=60)
    a = j["attempts"][-1]
    assert a["reason"] == "source_failed", j
    assert "snapshot_max_bytes" in a["message"], j
    assert os.listdir(os.path.join(agent.attempt_dir(job), "work")) == []


def test_agent_setting_reaches_the_runner(workspace, agent_factory):
    """snapshot_max_bytes set on the agent (1M here, to refuse a 2 MiB
    file) is the runner's bound."""
    ag = agent_factory(snapshot_max_bytes="1M").start()
    snap = upload_snapshot(workspace, {"big.bin": bytes(2 << 20)})
    job = workspace.submit(name="big", command=["true"],
                           source={"snapshot": snap})
    j = ag.wait_job(job, timeout=60)
    a = j["attempts"][-1]
    assert a["reason"] == "source_failed", j
    assert "1048576 bytes" in a["message"], j
    assert "snapshot_max_bytes" in a["message"], j


def test_agent_refuses_bad_bound():
    from harness.agent import Agent
    ag = Agent(None, snapshot_max_bytes="0")
    r = ag.cmd("status", check=False)
    assert r.returncode != 0
    assert "snapshot_max_bytes" in r.stderr + r.stdout


def git_root():
    d = tmpdir("tether-disk-git-")
    os.chmod(d, 0o755)
    return d


def test_git_checkout_over_source_max_bytes():
    """A repo whose checkout (1 MiB of zeros, a few KB packed) is over
    source_max_bytes (512K here, to stay small) ends source_failed naming
    it, and the work directory is empty again."""
    root = git_root()
    bare, _, _ = make_repo(root, files={"hello.txt": "hi\n",
                                        "data/zeros.bin": "0" * (1 << 20)})
    spec = {"name": "g", "command": ["true"],
            "source": {"git": {"url": bare, "ref": "main"}}}
    att = run_attempt(root, spec, settings={"source_max_bytes": 512 << 10})
    assert att["result"]["reason"] == "source_failed", att["log"]
    assert "source_max_bytes" in att["result"]["message"]
    assert os.listdir(os.path.join(att["dir"], "work")) == []
    ok = run_attempt(root, spec, settings={"source_max_bytes": 4 << 20},
                     job="2")
    assert ok["result"]["reason"] == "succeeded", ok["log"]
