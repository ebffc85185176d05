"""The start of a sandboxed job does what the kernel must and no more
(issue 23, metric 5): a fresh cgroup gets only the limits the job asks for,
each directory is one mkdir when its parent exists, and the sandbox's mount
point is shared by every attempt.  The runner's system calls, recorded by
strace, are the evidence; docs/performance.md has the timings."""
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


def test_a_start_makes_each_directory_with_one_call(tmp_path):
    """Each directory an attempt needs is one mkdir when its parent exists
    (the cgroup parent and the state dir made by an earlier attempt): no
    walk of every parent (before: 56 failing mkdir per attempt, 36 of
    them libcgroup's), and the sandbox's mount point is the state dir's,
    not a directory made and removed per attempt."""
    state = R.state_dir()
    first = R.make_attempt(["true"], job="first", state=state)
    assert R.run_runner(first).returncode == 0
    d = R.make_attempt(["true"], job="second", state=state)
    out = str(tmp_path / "strace-dirs.txt")
    r = subprocess.run(["strace", "-f", "-o", out, "-e", "trace=mkdir,rmdir",
                        binary("tether-runner"), "run", d],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert R.result(d)["reason"] == "succeeded", R.result(d)
    with open(out) as f:
        calls = [ln for ln in f if "mkdir(" in ln or "rmdir(" in ln]
    failed = [ln for ln in calls if "mkdir(" in ln and "EEXIST" in ln
              and "/.sandbox-root/" not in ln]
    # the source phase's check of work/ and the shared mount point
    assert len(failed) <= 2, failed
    assert not [ln for ln in calls if "rmdir(" in ln and
                not ln.split('"')[1].startswith("/sys/fs/cgroup/")], calls
    assert os.listdir(os.path.join(state, ".sandbox-root")) == []


def test_sandboxes_at_once_share_the_mount_point():
    state = R.state_dir()
    ds = [R.make_attempt(["/bin/sh", "-c", "sleep 0.5; echo ok"],
                         job="c%d" % i, state=state) for i in range(3)]
    ps = [R.start_runner(d) for d in ds]
    for d, p in zip(ds, ps):
        res = R.wait_result(d)
        p.stop()
        assert res["reason"] == "succeeded", res
        assert R.log(d).splitlines()[-1] == b"ok"
        assert not os.path.exists(os.path.join(d, ".sandbox"))
    assert os.listdir(os.path.join(state, ".sandbox-root")) == []


def test_a_root_that_cannot_be_built_says_why():
    """pid 1 builds the root before the runner's go (while the runner moves
    it into the cgroup), so a setup failure may end pid 1 before the go is
    written: the result still names the failure, not the closed pipe."""
    for i in range(3):
        d = R.make_attempt(
            ["true"], job="ro%d" % i,
            mounts=[{"source": "/etc", "target": "/usr/tether-no/data"}],
            runner={"allowed_mounts": [{"source": "/etc",
                                        "readonly": True}]})
        p = R.run_runner(d)
        assert p.returncode == 0, p.stderr
        res = R.result(d)
        assert res["reason"] == "launch_failed", res
        assert "mount target /usr/tether-no/data cannot be created" in \
            res["message"], res
