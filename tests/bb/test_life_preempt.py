"""Preemption with checkpoints (docs/checkpointing.md): a notice from each
source (scheduled events, SIGPWR, a file) stops leasing, checkpoints the
running attempt, uploads the checkpoint and requeues the job without
counting it as a failure; the next attempt resumes from the checkpoint.
Real workspace, real agent, real runner."""
import os
import re
import signal
import time

from harness.agent import TERMINAL, Agent
from harness.common import tmpdir, wait_until
from harness.life import attempt, digits_snapshot, events, upload_snapshot
from harness.workspace import Workspace

LIFE = {"preempt_poll": "200ms", "kill_grace": "2s"}


def wait_log(ag, job, attempt_no, text, timeout=60):
    """Wait until the workspace has text in the attempt's log (fail at
    once when the job ended without it)."""
    def seen():
        if text in ag.ws_log(job, attempt_no):
            return True
        if ag.job(job)["state"] in TERMINAL:
            return "ended"
        return False
    try:
        r = wait_until(seen, timeout, interval=0.1,
                       what=f"{text!r} in the log")
    except TimeoutError:
        r = "timeout"
    if r is not True:
        raise AssertionError(f"{text!r} not in the log of {job}/{attempt_no}"
                             f" ({r}):\n{ag.job(job)}\n"
                             f"{ag.output()[-3000:]}")


def succeeded(ag, job, timeout):
    """Wait for the job to end; it must have succeeded. Its last attempt."""
    j = ag.wait_job(job, timeout=timeout)
    assert j["state"] == "succeeded", (j, ag.output()[-3000:])
    return j["attempt"]


def last_attempts(ws, job):
    return ws.job(job)["attempts"]


def epochs(log):
    return [int(m) for m in re.findall(r"^epoch (\d+)/\d+ loss", log, re.M)]


def test_digits_preempted_in_epoch_3_resumes(workspace, agent_factory,
                                             scheduled_events):
    ag = agent_factory(preempt_events_url=scheduled_events.url,
                       **LIFE).start()
    snap = digits_snapshot(workspace)
    job = workspace.submit(
        name="digits-spot", command=["/usr/bin/python3", "train.py"],
        source={"snapshot": snap}, env={"EPOCHS": "6", "EPOCH_SLEEP": "1"},
        checkpoint={"grace": "5s"}, retries=0)
    # Epoch 2 saved its checkpoint; epoch 3 is under way: the notice.
    wait_log(ag, job, 1, b"TETHER_PROGRESS step=2\n", 120)
    scheduled_events.preempt(seconds=30)
    ag.wait_exit(60)  # drained: the attempt reported, nothing left
    assert "preemption notice (scheduled events" in ag.output()
    a1 = attempt(workspace, job, 1)
    assert a1["reason"] == "preempted", a1
    assert a1["checkpoint"] and a1["checkpoint"]["size"] > 0, a1
    assert a1["progress"] >= 2, a1
    j = workspace.job(job)
    assert j["state"] == "queued", j  # requeued though retries is 0
    assert j["checkpoint"]["attempt"] == 1
    assert j["checkpoint"]["id"] == a1["checkpoint"]["sha256"]
    log1 = ag.ws_log(job, 1).decode()
    assert max(epochs(log1)) < 6, log1

    scheduled_events.clear()
    ag.start()
    last = succeeded(ag, job, 120)
    # the notice reached the workspace first: nothing was handed back to
    # the preempted agent (issue 28)
    assert [a["reason"] for a in last_attempts(workspace, job)[:-1]] == \
        ["preempted"], ag.output()[-6000:]
    log2 = ag.ws_log(job, last).decode()
    m = re.search(r"resuming from epoch-(\d{4})\.pt at epoch (\d+)", log2)
    assert m, log2
    assert int(m.group(2)) >= 3, log2
    assert "TETHER_RESUME=1" in log2
    assert epochs(log2) == list(range(int(m.group(2)), 7)), log2
    assert len(epochs(log1)) + len(epochs(log2)) < 2 * 6
    assert attempt(workspace, job, last)["progress"] == 6


IGNORES_SIGNALS = b"""trap '' TERM INT USR1 USR2
echo "start attempt=$TETHER_ATTEMPT resume=${TETHER_RESUME:-0} files=$(ls -A "$TETHER_CHECKPOINTS" | wc -l)"
if [ "$TETHER_ATTEMPT" = 1 ]; then
  echo ready
  while :; do sleep 0.1; done
fi
echo finished
"""


def test_job_ignoring_signals_is_killed_and_restarts(workspace, agent_factory):
    ag = agent_factory(preempt_window="30s", **LIFE).start()
    snap = upload_snapshot(workspace, {"job.sh": IGNORES_SIGNALS})
    job = workspace.submit(name="stubborn", command=["sh", "job.sh"],
                           source={"snapshot": snap},
                           checkpoint={"grace": "1s"}, retries=0)
    wait_log(ag, job, 1, b"ready\n")
    t0 = time.time()
    ag.signal(signal.SIGPWR)
    ag.wait_exit(60)
    assert "preemption notice (SIGPWR" in ag.output()
    a1 = attempt(workspace, job, 1)
    assert a1["reason"] == "preempted", a1
    assert a1["signal"] == signal.SIGKILL, a1  # it ignored SIGTERM
    assert a1["checkpoint"] is None, a1  # it wrote none
    final = [e for e in events(workspace, job, 1) if e["type"] == "final"][0]
    assert final["time"] - t0 >= 1.0  # the grace was given
    log1 = ag.ws_log(job, 1).decode()
    assert "stopping job (preempted)" in log1 and "SIGKILL in 1.0s" in log1
    assert workspace.job(job)["state"] == "queued"

    ag.start()
    last = succeeded(ag, job, 60)
    log2 = ag.ws_log(job, last).decode()
    assert f"start attempt={last} resume=0 files=0" in log2, log2
    assert "finished" in log2


BIG_CHECKPOINT = b"""import hashlib, os, sys, time
ck = os.environ["TETHER_CHECKPOINTS"]
p = os.path.join(ck, "blob")
if os.environ.get("TETHER_RESUME") == "1":
    data = open(p, "rb").read()
    want = open(p + ".sha256").read()
    ok = hashlib.sha256(data).hexdigest() == want
    print("resumed", "ok" if ok else "CORRUPT", len(data), flush=True)
    sys.exit(0 if ok else 1)
data = os.urandom(24 << 20)
with open(p + ".sha256", "w") as f:
    f.write(hashlib.sha256(data).hexdigest())
with open(p + ".tmp", "wb") as f:
    f.write(data)
os.replace(p + ".tmp", p)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def test_agent_killed_during_checkpoint_upload():
    # A long lease: the workspace is stopped for a while below.
    ws = Workspace(lease_ttl="60s").start()
    notice = os.path.join(tmpdir("tether-life-"), "evicted")
    ag = Agent(ws, preempt_file=notice, **LIFE)
    try:
        ag.start()
        snap = upload_snapshot(ws, {"job.py": BIG_CHECKPOINT})
        job = ws.submit(name="big-ckpt", command=["/usr/bin/python3", "job.py"],
                        source={"snapshot": snap},
                        checkpoint={"grace": "2s"}, retries=0)
        wait_log(ag, job, 1, b"ready\n")
        # The workspace stops reading: the upload hangs half-way.
        ws.proc.signal(signal.SIGSTOP)
        open(notice, "w").close()
        wait_until(lambda: "uploading checkpoint" in ag.output(), 60,
                   what="the upload to start")
        ag.kill9()
        ws.proc.signal(signal.SIGCONT)
        os.unlink(notice)
        a1 = attempt(ws, job, 1)
        assert a1["checkpoint"] is None, a1  # a half upload is no checkpoint
        assert ws.job(job)["state"] != "queued"

        ag.start()
        last = succeeded(ag, job, 90)
        assert ag.output().count("uploading checkpoint") >= 2
        a1 = attempt(ws, job, 1)
        assert a1["reason"] == "preempted", a1
        out = os.path.join(ag.attempt_dir(job, 1),
                           f"checkpoint-out.{a1['checkpoint']['sha256']}.tar.gz")
        assert os.path.getsize(out) == a1["checkpoint"]["size"]
        log2 = ag.ws_log(job, last).decode()
        assert f"resumed ok {24 << 20}" in log2, log2
    finally:
        if ag.alive():
            ag.kill9()
        ws.proc.signal(signal.SIGCONT)
        ws.stop()
