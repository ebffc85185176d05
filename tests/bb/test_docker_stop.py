"""Ending docker jobs: memory overrun is `oom`; cancel and timeout stop the
container (SIGTERM, SIGKILL after the grace period) and it is gone within
grace + 1 s."""
import time

from harness import dockerd
from harness import runner as hr

STUBBORN = """import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("JOB-READY", flush=True)
time.sleep(300)
"""


def test_memory_overrun_is_oom(docker_base):
    d = dockerd.docker_attempt(
        ["python3", "-c", "b = b'x' * (400 << 20); print(len(b))"],
        job="D-oom", spec={"resources": {"memory": "64M"}})
    r = hr.run_runner(d, timeout=120)
    res = hr.result(d)
    assert res["reason"] == "oom", (res, r.stderr)
    assert res["peak_memory_bytes"] >= 60 << 20, res
    assert not dockerd.container_exists(dockerd.container_of(d))


def wait_ready(d):
    hr.wait_until(lambda: b"JOB-READY\n" in hr.log(d), 60, what="job ready")


def stop_and_measure(d, cid, grace):
    """Seconds from the stop request until the container is gone."""
    t0 = time.monotonic()
    hr.wait_until(lambda: not dockerd.container_exists(cid), grace + 10,
                  interval=0.05, what="container removal")
    return time.monotonic() - t0


def test_cancel_removes_container_within_grace(docker_base):
    grace = 2
    d = dockerd.docker_attempt(["python3", "/tether/work/stubborn.py"],
                               files={"stubborn.py": STUBBORN}, job="D-cancel")
    p = hr.start_runner(d)
    wait_ready(d)
    cid = dockerd.container_of(d)
    assert dockerd.container_exists(cid)
    hr.write_cancel(d, "cancelled", grace=grace)
    p.signal(10)
    took = stop_and_measure(d, cid, grace)
    res = hr.wait_result(d, 30)
    assert res["reason"] == "cancelled"
    assert took <= grace + 1, took
    assert took >= grace - 0.5, "SIGKILL before the grace period: %s" % took
    assert dockerd.containers("tether.dir=" + d) == []


def test_cancel_of_a_polite_job_is_quick(docker_base):
    d = dockerd.docker_attempt(["sh", "-c", "echo JOB-READY; exec sleep 300"],
                               job="D-polite")
    p = hr.start_runner(d)
    wait_ready(d)
    cid = dockerd.container_of(d)
    hr.write_cancel(d, "cancelled", grace=10)
    p.signal(10)
    took = stop_and_measure(d, cid, 10)
    assert hr.wait_result(d, 30)["reason"] == "cancelled"
    assert took < 3, "SIGTERM did not reach the job: %s" % took


def test_timeout_removes_container_within_grace(docker_base):
    grace = 1
    d = dockerd.docker_attempt(["python3", "/tether/work/stubborn.py"],
                               files={"stubborn.py": STUBBORN},
                               job="D-timeout", spec={"timeout": "3s"},
                               runner={"kill_grace": grace})
    p = hr.start_runner(d)
    wait_ready(d)
    cid = dockerd.container_of(d)
    t0 = time.monotonic()
    hr.wait_until(lambda: not dockerd.container_exists(cid), 30,
                  interval=0.05, what="container removal")
    took = time.monotonic() - t0
    res = hr.wait_result(d, 30)
    assert res["reason"] == "timed_out", res
    assert took <= 3 + grace + 1 + 0.5, took
    assert p.stop() == 0


def test_cancel_during_image_build(docker_base):
    """A cancel while the Dockerfile builds stops the build promptly."""
    d = dockerd.docker_attempt(
        ["true"], job="D-bcancel",
        dockerfile="FROM tether-test-base:bookworm\nRUN echo %s && sleep 60\n"
        % time.time())
    p = hr.start_runner(d)
    hr.wait_until(lambda: b"Step 2/" in hr.log(d), 60, what="build step 2")
    t0 = time.monotonic()
    hr.write_cancel(d, "cancelled", grace=1)
    p.signal(10)
    res = hr.wait_result(d, 30)
    took = time.monotonic() - t0
    assert res["reason"] == "cancelled", res
    assert took < 5, took
    assert b"[env] stopping docker build: cancelled" in hr.log(d)
    assert p.stop() == 0
    # the build's intermediate container goes away with it
    hr.wait_until(lambda: not [c for c in dockerd.api(
        "GET", "/containers/json?all=1")[1] if "sleep 60" in c["Command"]],
                  30, what="build container removal")


SIGNALS = """import os, signal, subprocess, sys, time
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
child = subprocess.Popen(["python3", "-c", '''
import os, signal, sys, time
os.setsid()
signal.signal(signal.SIGUSR1, lambda *a: (print("child USR1", flush=True),
                                          sys.exit(0)))
print("CHILD-READY", flush=True)
time.sleep(60)
'''])
while not got:
    time.sleep(0.05)
time.sleep(0.5)
print("parent USR1 x%d" % len(got), flush=True)
child.wait()
"""


def test_checkpoint_signal_reaches_every_process_once(docker_base):
    """The checkpoint signal reaches the job and a detached grandchild
    (its own session) once each, then the job ends by itself."""
    d = dockerd.docker_attempt(
        ["python3", "/tether/work/signals.py"], files={"signals.py": SIGNALS},
        job="D-sig", spec={"checkpoint": {"signal": "USR1", "grace": "10s"}})
    p = hr.start_runner(d)
    hr.wait_until(lambda: b"CHILD-READY\n" in hr.log(d), 60, what="child")
    hr.write_cancel(d, "cancelled", grace=10)
    p.signal(10)
    res = hr.wait_result(d, 30)
    log = hr.log(d).decode(errors="replace")
    assert "parent USR1 x1\n" in log, log
    assert log.count("child USR1\n") == 1, log
    assert res["reason"] == "cancelled"
