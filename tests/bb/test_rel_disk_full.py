"""Disk full in the agent's state dir (issue 13, item 7).

Scenario: the state dir is a 32 MiB tmpfs the test mounts.  A job runs
(baseline); then a file fills the filesystem to the last block and a job
is submitted; then the file is removed.
Pass criterion: the agent stays up the whole time; while full it does not
run the new job into a broken attempt (it refuses it with a reason naming
the disk, or leaves it queued) and says why (its log, `tether-agent
status`); when space returns it runs jobs again by itself; agent.db passes
`PRAGMA integrity_check` throughout."""
import os
import subprocess
import tempfile

import pytest

from harness.agent import Agent, db_integrity
from harness.common import wait_until


@pytest.fixture
def small_state_dir():
    d = tempfile.mkdtemp(prefix="tether-rel-disk-", dir="/var/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", d],
                   check=True)
    yield d
    subprocess.run(["umount", "-l", d], check=False)
    os.rmdir(d)


def fill(d):
    p = os.path.join(d, "filler")
    subprocess.run(["dd", "if=/dev/zero", "of=" + p, "bs=1M"], capture_output=True)
    subprocess.run(["dd", "if=/dev/zero", "of=" + p + "2", "bs=1"], capture_output=True)
    return [p, p + "2"]


MENTIONS = ("space", "disk", "enospc", "full")


def test_disk_full_in_state_dir(workspace, small_state_dir):
    ag = Agent(workspace, state_dir=small_state_dir).start()
    try:
        first = workspace.submit(name="before", command=["echo", "ok"])
        ag.wait_job(first, "succeeded", timeout=30)
        assert db_integrity(small_state_dir) == "ok"
        files = fill(small_state_dir)
        job = workspace.submit(name="j2", command=["echo", "RAN"])
        # Longer than lease_ttl + lost_grace + lost_margin (3 + 1 + 0.5 s):
        # a job the agent took but could not record would be lost by now.
        ended = lambda: workspace.job(job)["state"] not in ("queued", "assigned")
        try:
            wait_until(ended, 7, what="the job to end")
        except TimeoutError:
            pass
        assert ag.alive(), ag.output()[-3000:]
        j = workspace.job(job)
        if j["state"] not in ("queued", "assigned"):
            # refused with a reason naming the disk, never lost or half-run
            a = j["attempts"][-1]
            assert a["reason"] not in ("lost", "succeeded"), j
            assert any(m in (a.get("message") or "").lower() for m in MENTIONS), j
        status = ag.cmd("status", check=False)
        said = (status.stdout + status.stderr).lower()
        assert any(m in said for m in MENTIONS), said  # pressure reported
        for f in files:
            os.unlink(f)
        after = workspace.submit(name="after", command=["echo", "ok"])
        ag.wait_job(after, "succeeded", timeout=60)
        assert ag.alive()
        assert db_integrity(small_state_dir) == "ok"
    finally:
        ag.kill9()
        for pid in runner_pids(small_state_dir):
            os.kill(pid, 9)


def runner_pids(state):
    out = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if ("tether-runner\0run\0" + state).encode() in f.read():
                    out.append(int(p))
        except (OSError, ValueError):
            pass
    return out
