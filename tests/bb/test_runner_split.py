"""The runner's two programs (issue 23, runner/split.h): `tether-runner`
runs a job whose source, environment and launcher are on the node without
loading libgit2, libarchive or libcurl; an attempt that needs them (here a
snapshot source) and every command but `run` are handed to
`tether-runner-full`, which runs them as before."""
import io
import json
import os
import subprocess
import tarfile

import pytest

from harness import runner as R
from harness.common import binary, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

HEAVY = ("libgit2", "libarchive", "libcurl", "libprotobuf-c")


def job_running(d):
    """state.json once it records the started job (pid), else None."""
    try:
        with open(os.path.join(d, "state.json")) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return None
    return st if st.get("job_pid", 0) > 0 else None


def runner_seen(d):
    """(program name, mapped libraries) of the attempt's runner mid-job."""
    st = wait_until(lambda: job_running(d), timeout=60, what="job started")
    pid = st["runner_pid"]
    exe = os.path.basename(os.readlink("/proc/%d/exe" % pid))
    with open("/proc/%d/maps" % pid) as f:
        libs = {os.path.basename(line.split()[-1]) for line in f
                if ".so" in line}
    return exe, libs


def finish(p, d):
    """Wait for the runner to end; its result."""
    wait_until(lambda: not p.alive(), timeout=60, what="runner exit")
    return R.result(d)


def test_local_job_loads_no_heavy_library():
    d = R.make_attempt(["/bin/sh", "-c", "sleep 1"])
    p = R.start_runner(d)
    try:
        exe, libs = runner_seen(d)
    finally:
        res = finish(p, d)
    assert exe == "tether-runner"
    assert not [l for l in libs if l.startswith(HEAVY)], sorted(libs)
    assert res["reason"] == "succeeded", res


def test_snapshot_job_is_handed_to_the_full_runner():
    d = R.make_attempt(["/bin/sh", "-c", "sleep 1; cat /tether/work/hello"],
                       source={"snapshot": "ab" * 32})
    with tarfile.open(os.path.join(d, "snapshot.tar.gz"), "w:gz") as tf:
        ti = tarfile.TarInfo("hello")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"hi!\n\n"))
    p = R.start_runner(d)
    try:
        exe, libs = runner_seen(d)
    finally:
        res = finish(p, d)
    assert exe == "tether-runner-full"
    assert [l for l in libs if l.startswith("libarchive")], sorted(libs)
    assert res["reason"] == "succeeded", res
    with open(os.path.join(d, "log"), "rb") as f:
        assert b"hi!\n" in f.read()


def test_tensorboard_job_is_handed_to_the_full_runner():
    """metrics.tensorboard: the reader decodes protocol buffers
    (libprotobuf-c), so the attempt runs in tether-runner-full; a job with
    only a metrics regex stays in tether-runner (PCRE2 is light)."""
    d = R.make_attempt(["/bin/sh", "-c", "sleep 1"],
                       metrics={"tensorboard": "tb"})
    p = R.start_runner(d)
    try:
        exe, libs = runner_seen(d)
    finally:
        res = finish(p, d)
    assert exe == "tether-runner-full"
    assert [l for l in libs if l.startswith("libprotobuf-c")], sorted(libs)
    assert res["reason"] == "succeeded", res
    d = R.make_attempt(["/bin/sh", "-c", "sleep 1"],
                       metrics={"regex": "loss (?P<loss>\\S+)"})
    p = R.start_runner(d)
    try:
        exe, libs = runner_seen(d)
    finally:
        res = finish(p, d)
    assert exe == "tether-runner"
    assert not [l for l in libs if l.startswith(HEAVY)], sorted(libs)
    assert res["reason"] == "succeeded", res


def test_other_commands_run_in_the_full_runner(tmp_path):
    env_dir = str(tmp_path / "envs")
    os.mkdir(env_dir)
    r = subprocess.run([binary("tether-runner"), "envs", "--env-dir", env_dir,
                        "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    # the command tether-runner uses to evict a docker environment's image
    r = subprocess.run([binary("tether-runner"), "envs", "remove-image"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "environment key" in r.stderr, r.stderr
