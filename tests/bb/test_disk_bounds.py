"""Bounded disk (issue 19): snapshot bombs and git sources over their bound
end source_failed naming it, with the partial extraction removed; a job at
its disk budget ends disk_limit; finished attempts stay within
attempt_disk_budget; a nearly full state dir makes the agent refuse work,
say why, and resume when space returns."""
import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib

import pytest

from harness.agent import Agent, db_integrity
from harness.common import tmpdir, wait_until
from harness.gitserver import GitHttps, git, make_repo, run_attempt
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
    print(f"gzip bomb ({len(bomb)} bytes) refused in {took:.1f}s, "
          f"phases {a.get('durations')}")
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


# --- per-attempt disk budget (item 2) -------------------------------------
# The jobs write 2 MiB every ~20 ms (under 100 MiB/s), so that the documented
# overshoot (what the job writes in one disk_check_interval, default 1s, plus
# the time of one measure) is bounded for the assertion: 64M budget + 160M.
BUDGET = 64 << 20
OVERSHOOT = 160 << 20
WRITER = ("i=0; while :; do dd if=/dev/zero of={dir}/f$i bs=1M count=2 "
          "2>/dev/null; i=$((i+1)); sleep 0.02; done")


def used_in_log(log):
    m = re.search(rb"the job uses (\d+) bytes of disk", log)
    assert m, log[-2000:]
    return int(m.group(1))


def ends_disk_limit(agent, job):
    j = agent.wait_job(job, timeout=60)
    a = j["attempts"][-1]
    assert a["reason"] == "disk_limit", (j, agent.ws_log(job)[-2000:])
    log = agent.ws_log(job)
    used = used_in_log(log)
    assert BUDGET <= used < BUDGET + OVERSHOOT, used
    print(f"stopped at {used / 2**20:.0f} MiB for a 64 MiB budget")
    return log


def test_job_filling_its_work_dir_ends_disk_limit(workspace, agent):
    job = workspace.submit(name="fill-work", resources={"disk": "64M"},
                           command=["sh", "-c",
                                    WRITER.format(dir="/tether/work")])
    ends_disk_limit(agent, job)
    left = du(os.path.join(agent.attempt_dir(job), "work"))
    assert left < BUDGET + OVERSHOOT, left


def test_job_filling_its_tmp_ends_disk_limit(workspace, agent):
    job = workspace.submit(name="fill-tmp", resources={"disk": "64M"},
                           command=["sh", "-c", WRITER.format(dir="/tmp")])
    ends_disk_limit(agent, job)


def test_job_writing_a_deleted_file_ends_disk_limit(workspace, agent):
    """A file unlinked but held open is counted (fd 3 of the job)."""
    cmd = ("exec 3>/tether/work/hidden; rm /tether/work/hidden; "
           "while :; do head -c 2097152 /dev/zero >&3; sleep 0.02; done")
    job = workspace.submit(name="fill-hidden", resources={"disk": "64M"},
                           command=["sh", "-c", cmd])
    ends_disk_limit(agent, job)


def test_attempt_max_disk_is_the_default_budget(workspace, agent_factory):
    """A job without resources.disk gets the agent's attempt_max_disk (64M
    here, the setting under test); one asking for more is refused naming
    resources.disk."""
    ag = agent_factory(attempt_max_disk="64M").start()
    job = workspace.submit(name="fill", command=[
        "sh", "-c", WRITER.format(dir="/tether/outputs")])
    ends_disk_limit(ag, job)
    big = workspace.submit(name="big", resources={"disk": "1G"},
                           command=["true"])
    j = ag.wait_job(big, timeout=60)
    a = j["attempts"][-1]
    assert a["reason"] == "launch_failed", j
    assert "resources.disk" in a["message"], j
    assert "attempt_max_disk" in a["message"], j
    spec = os.path.join(ag.base, "big.json")
    with open(spec, "w") as f:
        f.write('{"name": "big", "command": ["true"], '
                '"resources": {"disk": "1G"}}')
    r = ag.cmd("submit", spec, check=False)
    assert r.returncode != 0 and "resources.disk" in r.stderr, r.stderr
    ok = workspace.submit(name="small", resources={"disk": "32M"},
                          command=["sh", "-c", "head -c 1048576 /dev/zero "
                                   "> /tether/work/f; echo done"])
    ag.wait_job(ok, "succeeded", timeout=60)


def test_bad_resources_disk_names_the_field(workspace):
    for bad in ("lots", -5, 100, [1], "1X"):
        st, _, b = workspace.api("POST", "/api/v1/jobs", json={
            "name": "bad", "command": ["true"], "resources": {"disk": bad}})
        assert st == 400, (bad, st, b)
        assert "resources.disk" in b["error"]["message"], b


# --- small state dir: a loop-mounted ext4 (items 3 and 4) ------------------

@pytest.fixture
def loop_state_dir():
    """A 128 MiB ext4 filesystem on a loop device as the state dir."""
    base = tempfile.mkdtemp(prefix="tether-disk-loop-", dir="/var/tmp")
    img, d = os.path.join(base, "fs.img"), os.path.join(base, "state")
    os.mkdir(d)
    subprocess.run(["truncate", "-s", "128M", img], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", img], check=True)
    subprocess.run(["mount", "-o", "loop", img, d], check=True)
    os.chmod(d, 0o700)
    yield d
    subprocess.run(["umount", "-l", d], check=False)
    shutil.rmtree(base, ignore_errors=True)


def fs_size(d):
    sv = os.statvfs(d)
    return sv.f_blocks * sv.f_frsize


def test_finished_attempts_kept_within_default_budget(workspace,
                                                      loop_state_dir):
    """Default attempt_disk_budget (10% of the state dir's filesystem):
    finished attempts beyond it are removed, oldest first, soon after they
    end (not at the next housekeeping_interval, default 10 min)."""
    ag = Agent(workspace, state_dir=loop_state_dir).start()
    try:
        budget = fs_size(loop_state_dir) // 10
        jobs = []
        for i in range(5):  # 5 x 5 MiB, twice the budget
            j = workspace.submit(name=f"leave{i}", command=[
                "sh", "-c", "head -c 5242880 /dev/zero > /tether/work/junk"])
            ag.wait_job(j, "succeeded", timeout=60)
            jobs.append(j)
        jobs_dir = os.path.join(loop_state_dir, "jobs")
        wait_until(lambda: du(jobs_dir) <= budget, 30,
                   what=f"finished attempts to fit in {budget} bytes")
        assert not os.path.exists(ag.attempt_dir(jobs[0]))  # oldest first
        assert os.path.exists(ag.attempt_dir(jobs[-1]))
    finally:
        ag.kill9()


def agent_row(workspace, name):
    st, _, b = workspace.api("GET", "/api/v1/agents")
    assert st == 200, b
    (row,) = [a for a in b["agents"] if a["name"] == name]
    return row


def test_nearly_full_state_dir_refuses_and_resumes(workspace, loop_state_dir):
    """Default state_dir_min_free (2%, at least 4 MiB): with the state dir's
    filesystem filled the agent stays up, takes no job and says why in its
    heartbeat, `status` and `doctor`; freed, it runs the waiting job."""
    ag = Agent(workspace, state_dir=loop_state_dir).start()
    filler = os.path.join(loop_state_dir, "filler")
    try:
        first = workspace.submit(name="before", command=["echo", "ok"])
        ag.wait_job(first, "succeeded", timeout=30)
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=1M"],
                       capture_output=True)
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler + "2",
                        "bs=4k"], capture_output=True)
        refusing = lambda: (agent_row(workspace, ag.name)["free"] or {}) \
            .get("refusing")
        why = wait_until(refusing, 15, what="the heartbeat to say why")
        assert "nearly full" in why and "state_dir_min_free" in why, why
        job = workspace.submit(name="waits", command=["echo", "RAN"])
        time.sleep(3)  # 3 heartbeats: a job offered now would be taken
        j = workspace.job(job)
        assert j["state"] == "queued" and not j.get("attempts"), j
        assert ag.alive(), ag.output()[-3000:]
        st = ag.cmd("status", check=False)
        assert "nearly full" in st.stdout, st.stdout
        doc = ag.cmd("doctor", check=False, timeout=120)
        assert "nearly full" in doc.stdout + doc.stderr, doc.stdout
        assert doc.returncode != 0
        assert db_integrity(loop_state_dir) == "ok"
        os.unlink(filler)
        os.unlink(filler + "2")
        ag.wait_job(job, "succeeded", timeout=60)
        assert b"RAN" in ag.ws_log(job)
        wait_until(lambda: not refusing(), 15, what="refusing to clear")
        assert ag.alive()
        assert db_integrity(loop_state_dir) == "ok"
    finally:
        ag.kill9()


def test_docker_job_filling_its_work_dir_ends_disk_limit(docker_base):
    """The docker launcher binds the same attempt directories: measured the
    same way (its container layer is not: docs/state-dir.md)."""
    from harness import dockerd
    from harness import runner as hr
    d = dockerd.docker_attempt(
        ["sh", "-c", WRITER.format(dir="/tether/work")], job="D-disk",
        spec={"resources": {"disk": "64M"}})
    r = hr.run_runner(d, timeout=120)
    res = hr.result(d)
    log = hr.log(d)
    assert res["reason"] == "disk_limit", (res, r.stderr, log[-3000:])
    used = int(re.search(rb"the job uses (\d+) bytes", log).group(1))
    assert BUDGET <= used < BUDGET + OVERSHOOT, used
    cid = dockerd.container_of(d)
    assert not dockerd.container_exists(cid), "container not removed"


def test_git_fetch_over_source_max_bytes():
    """A fetch receiving more than source_max_bytes (512K here, to stay
    small) of incompressible data over https is aborted naming the bound;
    the mirror keeps no partial pack."""
    root = git_root()
    work = os.path.join(root, "big.git.work")
    bare, _, _ = make_repo(root, name="big.git",
                           files={"hello.txt": "hi\n"})
    with open(os.path.join(work, "random.bin"), "wb") as f:
        f.write(os.urandom(2 << 20))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "random", cwd=work)
    git("push", "-q", bare, "main", cwd=work)
    srv = GitHttps(root, token="tok-1234")
    try:
        spec = {"name": "g", "command": ["true"],
                "source": {"git": {"url": srv.url("big.git"), "ref": "main",
                                   "token_secret": "T"}},
                "secrets": {"T": "tok-1234"}}
        att = run_attempt(root, spec, settings={
            "git_ca_file": srv.cert, "source_max_bytes": 512 << 10})
        assert att["result"]["reason"] == "source_failed", att["log"]
        msg = att["result"]["message"]
        assert "bytes received" in msg and "source_max_bytes" in msg, msg
        assert os.listdir(os.path.join(att["dir"], "work")) == []
        mirrors = os.path.join(root, "state", "git")
        assert du(mirrors) < (1 << 20), du(mirrors)
    finally:
        srv.stop()


def test_job_making_empty_files_ends_disk_limit(workspace, agent):
    """Empty files take inodes, not blocks: each entry counts 4 KiB, so
    40,000 of them pass a 64 MiB budget (they counted nothing)."""
    cmd = ("import os\n"
           "os.makedirs('/tether/work/e', exist_ok=True)\n"
           "for i in range(40000):\n"
           "    open('/tether/work/e/%d' % i, 'w').close()\n"
           "import time; time.sleep(10)\n")
    job = workspace.submit(name="empty-files", resources={"disk": "64M"},
                           command=["/usr/bin/python3", "-c", cmd])
    ends_disk_limit(agent, job)
