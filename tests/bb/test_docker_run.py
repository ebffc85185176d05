"""Docker launcher, end to end through `tether-runner run DIR`: a job whose
environment is built from the Dockerfile in its git source runs in a
container, its 50 MB of binary output arrives byte-exact in the log, its
outputs are listed, and the container is removed afterwards."""
import hashlib
import os
import random

from harness import dockerd
from harness import runner as hr

BEGIN = b"\n<<<TETHER-BEGIN-7f3a>>>\n"
END = b"\n<<<TETHER-END-7f3a>>>\n"
SIZE = 50 << 20

GEN = """import os, random, sys, time
print("to stderr", file=sys.stderr, flush=True)
time.sleep(0.3)  # stdout and stderr are separate pipes into the engine
out = sys.stdout.buffer
out.write(%r)
data = random.Random(1234).randbytes(%d)
i, step = 0, 1
while i < len(data):
    out.write(data[i:i + step]); i += step
    step = step * 3 + 1 if step < 300000 else 7
out.write(%r)
out.flush()
with open(os.environ["TETHER_OUTPUTS"] + "/result.txt", "w") as f:
    f.write("done\\n")
""" % (BEGIN, SIZE, END)


def test_dockerfile_job_runs_log_exact_outputs(docker_base):
    d = dockerd.docker_attempt(["python3", "/tether/work/gen.py"],
                               files={"gen.py": GEN}, job="D-run")
    r = hr.run_runner(d, timeout=300)
    res = hr.result(d)
    log = hr.log(d)
    assert res["reason"] == "succeeded", (res, r.stderr, log[-3000:])
    start = log.index(BEGIN) + len(BEGIN)
    end = log.index(END, start)
    want = random.Random(1234).randbytes(SIZE)
    got = log[start:end]
    assert len(got) == SIZE
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest()
    assert log.count(BEGIN) == 1 and log.count(END) == 1
    assert b"to stderr\n" in log[:start]
    assert b"[env]" in log[:start]
    assert [o["path"] for o in res["outputs"]] == ["result.txt"]
    assert res["outputs"][0]["sha256"] == hashlib.sha256(b"done\n").hexdigest()
    assert res["peak_memory_bytes"] > SIZE // 4  # the job held the data
    assert res["cpu_seconds"] > 0
    cid = dockerd.container_of(d)
    assert len(cid) == 64
    assert not dockerd.container_exists(cid), "container not removed"
