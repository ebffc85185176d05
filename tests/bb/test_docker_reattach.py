"""kill -9 of the runner mid-job: a new runner on the same attempt finds
the same container (same id, not restarted, never a second one) and the log
continues without loss or duplication."""
import os
import re
import time

from harness import dockerd
from harness import runner as hr

TICKER = """import os, sys, time
print("START", os.getpid(), flush=True)
for i in range(60):
    sys.stdout.write("line %03d %s\\n" % (i, "x" * (i % 50)))
    sys.stdout.flush()
    time.sleep(0.1)
"""


def started_at(cid):
    st, info = dockerd.api("GET", "/containers/%s/json" % cid)
    assert st == 200, info
    return info["State"]["StartedAt"], info["RestartCount"]


def test_runner_kill9_reattaches_same_container(docker_base):
    d = dockerd.docker_attempt(["python3", "/tether/work/ticker.py"],
                               files={"ticker.py": TICKER}, job="D-re")
    p = hr.start_runner(d)
    hr.wait_until(lambda: b"line 010" in hr.log(d), 60, what="line 10")
    cid = dockerd.container_of(d)
    first_start = started_at(cid)
    p.kill9()
    time.sleep(1)  # the job keeps printing with no runner attached
    assert dockerd.container_exists(cid)
    p2 = hr.start_runner(d)
    res = hr.wait_result(d, 60)
    assert p2.stop() == 0
    assert res["reason"] == "succeeded", res
    assert dockerd.container_of(d) == cid
    assert dockerd.containers("tether.dir=" + d) == []  # removed, one only
    log = hr.log(d).decode()
    assert log.count("START ") == 1, "job restarted"
    got = re.findall(r"^line (\d{3}) x*$", log, re.M)
    assert got == ["%03d" % i for i in range(60)], got
    assert first_start[1] == 0
