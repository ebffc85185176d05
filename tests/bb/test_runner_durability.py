"""Durability where it matters (issue 23, docs/recovery.md "Durability"):
a sandboxed `true` syncs the started job's record in state.json before the
`started` event, then the log, the final event and result.json in that
order, and nothing else: phase writes are atomic (rename) but not synced.
The runner's own system calls, recorded by strace, are the evidence."""
import os
import re
import shutil
import subprocess

import pytest

from harness import runner as R
from harness.common import binary

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root"),
    pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")]

LINE = re.compile(r"^(\d+) +(\w+)\((.*)$")
RESUMED = re.compile(r"^(\d+) +<\.\.\. (\w+) resumed>(.*)$")


def calls_of(lines):
    """(pid, name, args) per call, an interrupted call's two lines joined."""
    held = {}
    for line in lines:
        m = RESUMED.match(line)
        if m:
            pid, name, rest = m.groups()
            if pid in held:
                yield pid, name, held.pop(pid) + rest
            continue
        m = LINE.match(line)
        if not m:
            continue
        pid, name, args = m.groups()
        if args.endswith("<unfinished ...>"):
            held[pid] = args[:-len("<unfinished ...>")]
        else:
            yield pid, name, args


def traced_run(tmp_path):
    d = R.make_attempt(["true"])
    out = str(tmp_path / "strace.txt")
    r = subprocess.run(["strace", "-f", "-o", out, "-s", "4096", "-e",
                        "trace=openat,rename,fsync,fdatasync,write,execve",
                        binary("tether-runner"), "run", d],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert R.result(d)["reason"] == "succeeded"
    with open(out) as f:
        calls = list(calls_of(f))
    main = calls[0][0]  # the runner itself; its children run the job
    return d, [(name, args) for pid, name, args in calls if pid == main]


def unq(args):
    return args.replace('\\"', '"')


def fd_of(args):
    m = re.search(r"= (\d+)", args)
    return m and m.group(1)


def test_syncs_only_the_job_record_and_the_end(tmp_path):
    d, calls = traced_run(tmp_path)
    fds = {}  # fd -> the path it was opened on (latest)
    trail = []  # (what, path) in order
    for name, args in calls:
        if name == "openat" and fd_of(args.split(")")[-1] + ")"):
            path = re.search(r'"([^"]*)"', args).group(1)
            fds[fd_of(args.split(")")[-1] + ")")] = path
        elif name in ("fsync", "fdatasync"):
            fd = re.match(r"(\d+)", args).group(1)
            trail.append(("sync", os.path.basename(fds.get(fd, "?"))))
        elif name == "rename":
            trail.append(("rename", os.path.basename(
                re.findall(r'"([^"]*)"', args)[1])))
        elif name == "write" and '"type":"started"' in unq(args):
            trail.append(("started", ""))
        elif name == "write" and '"type":"final"' in unq(args):
            trail.append(("final", ""))
    syncs = [t for t in trail if t[0] == "sync"]
    # before: 18 (state.json synced at every phase, twice each)
    assert len(syncs) == 6, trail
    attempt = os.path.basename(d)
    start = trail.index(("started", ""))
    # the last state.json before `started` is synced: file, rename, directory
    i = max(k for k in range(start) if trail[k] == ("rename", "state.json"))
    assert trail[i - 1][0] == "sync" and \
        trail[i - 1][1].startswith("state.json.tmp"), trail
    assert trail[i + 1] == ("sync", attempt), trail
    # phase writes before the job starts are not synced
    first = trail.index(("rename", "state.json"))
    assert first < i and trail[first - 1][0] != "sync", trail
    # the end: log, final event, events, result.json (file, rename, dir)
    fin = trail.index(("final", ""))
    assert trail[fin - 1] == ("sync", "log"), trail
    assert trail[fin + 1] == ("sync", "events"), trail
    r = trail.index(("rename", "result.json"))
    assert trail[r - 1][1].startswith("result.json.tmp"), trail
    assert trail[r + 1] == ("sync", attempt), trail
    # `done` after result.json: not synced
    assert trail[-1] == ("rename", "state.json"), trail


def test_state_json_written_at_start_run_record_and_done(tmp_path):
    """The source and env phases do not rewrite state.json (a runner that
    finds it after a crash starts afresh from either): four writes, each a
    new file and a rename (before: six, the start's `source` written
    twice and `env` once more)."""
    d, calls = traced_run(tmp_path)
    renames = [os.path.basename(re.findall(r'"([^"]*)"', a)[1])
               for name, a in calls if name == "rename"]
    assert renames.count("state.json") == 4, renames
    assert R.state(d)["phase"] == "done"


def traced_cgroup_writes(tmp_path, **spec):
    """The control files a sandboxed `true` opened for writing."""
    d = R.make_attempt(["true"], **spec)
    out = str(tmp_path / "strace-cg.txt")
    r = subprocess.run(["strace", "-f", "-o", out, "-s", "256", "-e",
                        "trace=openat", binary("tether-runner"), "run", d],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert R.result(d)["reason"] == "succeeded", R.result(d)
    files = []
    with open(out) as f:
        for line in f:
            m = re.search(r'openat\([^"]*"(/sys/fs/cgroup/[^"]*)", O_WRONLY',
                          line)
            if m:
                files.append(os.path.basename(m.group(1)))
    return files


@pytest.mark.skipif(os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
                    reason="cgroup v1 control files")
def test_a_fresh_cgroup_gets_only_the_limits_asked_for(tmp_path):
    """A new group starts at the kernel's defaults; the runner writes the
    limits the job asks for and the device list, not the defaults (before:
    cpu.cfs_period_us and cpu.cfs_quota_us, whose write costs ≈ 1 ms of
    CPU each run, memory.* and cpuacct.usage for every job)."""
    # default_pids off: this test is about what a job without limits gets
    files = traced_cgroup_writes(tmp_path, runner={"default_pids": 0})
    assert "devices.deny" in files, files
    for f in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "pids.max",
              "memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
              "cpuacct.usage"):
        assert f not in files, files
    files = traced_cgroup_writes(tmp_path, resources={
        "cpus": 0.5, "memory": "64M", "pids": 64})
    for f in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "pids.max",
              "memory.limit_in_bytes"):
        assert f in files, files


@pytest.mark.skipif(os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
                    reason="cgroup v1 control files")
def test_a_cgroup_left_by_a_crash_is_reset_to_the_jobs_limits():
    """A group of the same name left behind (a runner killed mid-job) keeps
    what that runner wrote; the next runner writes every value again, so a
    job without a CPU limit runs without the left quota."""
    d = R.make_attempt(["/bin/sh", "-c",
                        "p=$(sed -n 's/^[0-9]*:cpu:\\(.*\\)/\\1/p' "
                        "/proc/self/cgroup); "
                        "cat /sys/fs/cgroup/cpu$p/cpu.cfs_quota_us"],
                       runner={"default_pids": 0})
    state = os.path.dirname(os.path.dirname(os.path.dirname(d)))
    cg = R.cgroup_parent(state) + "/42_1"
    for ctl in ("memory", "cpu", "cpuacct", "pids", "devices", "freezer"):
        os.makedirs(f"/sys/fs/cgroup/{ctl}/{cg}")
    with open(f"/sys/fs/cgroup/cpu/{cg}/cpu.cfs_quota_us", "w") as f:
        f.write("20000")
    p = R.run_runner(d)
    assert p.returncode == 0, p.stderr
    assert R.result(d)["reason"] == "succeeded", R.log(d)
    assert R.log(d).decode().strip().splitlines()[-1] == "-1", R.log(d)
    assert not os.path.exists(f"/sys/fs/cgroup/cpu/{cg}")
