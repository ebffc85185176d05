"""The job log (issue 5): every byte, in order, at full speed; secrets
masked even when split across writes; the max_log_bytes cap; and the
outputs listing with refusals."""
import hashlib
import os
import random

import pytest

from harness import runner as R

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

# 200 distinct MiB blocks (seeded, numbered): a lost, doubled or reordered
# chunk changes the hash.
BLAST = """
import os, random
block = random.Random(42).randbytes(1 << 20)
out = os.fdopen(1, "wb", buffering=0)
for i in range(200):
    out.write(b"%08d" % i + block[8:])
"""


def blast_expected():
    block = random.Random(42).randbytes(1 << 20)
    h = hashlib.sha256()
    for i in range(200):
        h.update(b"%08d" % i + block[8:])
    return h.hexdigest()


def test_200mb_log_is_byte_identical():
    d = R.make_attempt(["/usr/bin/python3", "-c", BLAST])
    p = R.run_runner(d, timeout=300)
    assert p.returncode == 0, p.stderr
    assert R.result(d)["reason"] == "succeeded"
    prefix = b"[source] no source: empty work directory\n"
    h = hashlib.sha256()
    size = 0
    with open(R.path(d, "log"), "rb") as f:
        head = f.readline() + f.readline()  # the [source] and [env] lines
        assert head.startswith(prefix), head
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    assert size == 200 << 20
    assert h.hexdigest() == blast_expected()


SECRET = "s3cr3t-VALUE-0042"
SPLIT = """
import os, sys, time
s = os.environ["DB_PASSWORD"]
print("raw:", s, flush=True)
os.write(1, b"split:" + s[:5].encode()); time.sleep(0.3)
os.write(1, s[5:11].encode()); time.sleep(0.3)
os.write(1, s[11:].encode() + b"\\n")
os.write(2, b"stderr " + s.encode() + b" end\\n")
os.write(1, b"prefix-only " + s[:7].encode() + b"\\n")
"""


def test_secrets_masked_raw_and_split():
    d = R.make_attempt(["/usr/bin/python3", "-c", SPLIT],
                       secrets={"DB_PASSWORD": SECRET})
    R.run_runner(d)
    assert R.result(d)["reason"] == "succeeded"
    text = R.log(d).decode()
    assert SECRET not in text
    assert "raw: ***\n" in text
    assert "split:***\n" in text
    assert "stderr *** end\n" in text
    assert "prefix-only " + SECRET[:7] + "\n" in text  # not a secret: kept


def test_log_cap_adds_marker():
    d = R.make_attempt(["/bin/sh", "-c",
                        "head -c 100000 /dev/zero | tr '\\0' a; echo; echo tail"],
                       runner={"max_log_bytes": 5000})
    R.run_runner(d)
    data = R.log(d)
    assert R.result(d)["reason"] == "succeeded"
    assert b"[tether] log truncated at 5000 bytes (max_log_bytes)" in data
    assert b"tail" not in data.split(b"truncated")[1]
    assert len(data) < 5400


OUTPUTS = """
import os
os.makedirs("/tether/outputs/a/b")
with open("/tether/outputs/a/b/model.bin", "wb") as f:
    f.write(b"weights")
os.symlink("/etc/passwd", "/tether/outputs/passwd")
try:
    with open("/tether/outputs/../x", "w") as f:
        f.write("escape")
    print("ESCAPED")
except OSError as e:
    print("dotdot refused:", e.strerror)
"""


def test_outputs_listed_and_refused():
    d = R.make_attempt(["/usr/bin/python3", "-c", OUTPUTS])
    R.run_runner(d)
    res = R.result(d)
    assert res["reason"] == "succeeded", R.log(d)
    assert res["outputs"] == [{"path": "a/b/model.bin", "size": 7,
                               "sha256": hashlib.sha256(b"weights").hexdigest()}]
    assert res["refused"] == [{"path": "passwd",
                               "why": "symlink points outside the outputs directory"}]
    text = R.log(d).decode()
    assert "ESCAPED" not in text and "dotdot refused: Read-only file system" in text
    assert not os.path.exists(os.path.join(d, "x"))
    assert "[tether] output refused: passwd" in text
