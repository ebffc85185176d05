"""tether-runner's cgroup limits (issue 5, second acceptance line): memory
(OOM reported as `oom`), pids (a fork bomb is held), CPU quota."""
import os
import time

import pytest

from harness import runner as R

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")


def test_memory_limit_ends_oom():
    script = ("import sys\nblocks=[]\n"
              "for i in range(400):\n"
              "    blocks.append(bytearray(1<<20))\n"
              "    if i % 50 == 0: print('allocated', i, 'MiB', flush=True)\n"
              "print('survived')\n")
    d = R.make_attempt(["/usr/bin/python3", "-c", script],
                       resources={"memory": "64M"})
    p = R.run_runner(d)
    assert p.returncode == 0, p.stderr
    res = R.result(d)
    assert res["reason"] == "oom", (res, R.log(d))
    assert res["signal"] == 9
    assert b"survived" not in R.log(d)
    assert 32 << 20 < res["peak_memory_bytes"] <= 64 << 20


def test_fork_bomb_held_by_pids_limit():
    # Forks as fast as it can for 3 s; every child sleeps.  The pids limit
    # (64) makes fork fail with EAGAIN; the host keeps answering.
    script = ("import os,time\nend=time.time()+3\nn=0;fails=0\n"
              "while time.time()<end:\n"
              "    try:\n"
              "        if os.fork()==0:\n"
              "            time.sleep(30); os._exit(0)\n"
              "        n+=1\n"
              "    except OSError:\n"
              "        fails+=1; time.sleep(0.001)\n"
              "print('forked',n,'failed',fails,flush=True)\n")
    d = R.make_attempt(["/usr/bin/python3", "-c", script], resources={"pids": 64})
    t0 = time.monotonic()
    p = R.start_runner(d)
    R.wait_started(d)
    # the machine stays responsive while the bomb runs
    t1 = time.monotonic()
    R.run(["/bin/true"])
    assert time.monotonic() - t1 < 2
    res = R.wait_result(d, timeout=30)
    p.stop()
    text = R.log(d).decode()
    forked = int(text.split("forked ")[1].split()[0])
    fails = int(text.split("failed ")[1].split()[0])
    assert forked < 64 and fails > 0, text
    assert res["reason"] == "succeeded"
    assert time.monotonic() - t0 < 20


def _cpuacct_ns(path):
    with open(f"/sys/fs/cgroup/cpuacct/{path}/cpuacct.usage") as f:
        return int(f.read())


def _throttled(path):
    with open(f"/sys/fs/cgroup/cpu/{path}/cpu.stat") as f:
        return int(dict(ln.split() for ln in f)["nr_throttled"])


def test_cpus_half_holds_busy_loop_near_50_percent():
    d = R.make_attempt(["/usr/bin/python3", "-c", "while True: pass"],
                       resources={"cpus": 0.5}, timeout=30)
    p = R.start_runner(d)
    R.wait_started(d)
    cg = R.state(d)["cgroup"]
    assert cg.startswith("tether-test/"), cg
    quota = tuple(int(open(f"/sys/fs/cgroup/cpu/{cg}/cpu.cfs_{k}_us").read())
                  for k in ("quota", "period"))
    time.sleep(0.3)  # past the start-up
    a, t0, th0 = _cpuacct_ns(cg), time.monotonic(), _throttled(cg)
    time.sleep(2.0)
    b, t1, th1 = _cpuacct_ns(cg), time.monotonic(), _throttled(cg)
    share = (b - a) / 1e9 / (t1 - t0)
    R.write_cancel(d)
    res = R.wait_result(d)
    p.stop()
    # The quota caps it near 50 % (the 2-core test machine is shared, so
    # the lower bound is generous); when it got near the cap, CFS throttled
    # it (the quota, not luck, held it there).
    assert 0.2 <= share <= 0.62, share
    assert th1 - th0 >= 10 or share < 0.45, (share, th0, th1)
    assert quota == (50000, 100000)
    assert res["reason"] == "cancelled"
    assert res["cpu_seconds"] > 0.5
