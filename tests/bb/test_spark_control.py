"""Stopping Spark applications (issue 27): cancel and timeout end the
application on the cluster (the master lists it KILLED) within kill_grace +
5 s, not just the local spark-submit; kill -9 of the agent during a job
leaves the driver running and the job succeeds with one attempt; so does
kill -9 of the runner (the driver's sandbox outlives it, the new runner
adopts it and resumes its output where the log ends), and a cancel after
that still kills the application on the cluster; an application the master holds WAITING (no free cores)
is the attempt's `pending` sub-state; the executor logs never follow a link
the job left."""
import json
import os
import re
import signal
import time

from harness.common import wait_until
from harness.life import upload_snapshot
from harness.workspace import Workspace
from harness.agent import Agent
from harness.spark import KILL_GRACE, SLOW


def submit_slow(ws, secs, **spec):
    snap = upload_snapshot(ws, {"slow.py": SLOW})
    full = {"name": "spark-slow", "command": ["slow.py", str(secs)],
            "launcher": "spark", "source": {"snapshot": snap},
            "spark": {"executors": 2, "executor_cores": 1,
                      "executor_memory": "600m", "driver_memory": "600m"}}
    full.update(spec)
    return ws.submit(full)


def spark_settings(cluster):
    # spark_home: the test Spark is in its venv, not on PATH;
    # spark_master_ui: the harness master's UI is on a free port.
    return {"spark_home": cluster.home, "spark_master": cluster.master,
            "spark_master_ui": cluster.ui}


def app_running(ag, job, cluster):
    """The application id once state.json has it and the master runs it
    with executors (the tasks are sleeping)."""
    def ready():
        with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
            app = json.load(f).get("launcher_ref")
        if not app or cluster.apps().get(app) != "RUNNING":
            return None
        return app if cluster.status()["coresused"] > 0 else None
    return wait_until(ready, 120, interval=0.2,
                      what="the Spark application to run")


def killed_within(cluster, app, t0, limit):
    wait_until(lambda: cluster.apps().get(app) == "KILLED", limit + 30,
               interval=0.1, what="the master to list %s KILLED" % app)
    took = time.monotonic() - t0
    assert took <= limit, "KILLED after %.1fs (limit %.1fs)" % (took, limit)
    return took


def test_cancel_kills_the_application_on_the_cluster(workspace,
                                                     agent_factory,
                                                     spark_cluster):
    ag = agent_factory(**spark_settings(spark_cluster)).start()
    job = submit_slow(workspace, 600)
    app = app_running(ag, job, spark_cluster)
    t0 = time.monotonic()
    st, _, b = workspace.api("POST", "/api/v1/jobs/%s/cancel" % job)
    assert st in (200, 202), b
    killed_within(spark_cluster, app, t0, KILL_GRACE + 5)
    j = ag.wait_job(job, timeout=60)
    assert j["state"] == "cancelled", j
    log = open(os.path.join(ag.attempt_dir(job), "log"), "rb").read()
    assert b"[spark] application %s killed on %s\n" % (
        app.encode(), spark_cluster.master.encode()) in log, log[-3000:]
    # the executors are gone: the cluster's cores are free again
    wait_until(lambda: spark_cluster.status()["coresused"] == 0, 30,
               what="the executors to end")


def test_timeout_kills_the_application_on_the_cluster(workspace,
                                                      agent_factory,
                                                      spark_cluster):
    ag = agent_factory(**spark_settings(spark_cluster)).start()
    job = submit_slow(workspace, 600, timeout="40s")
    app = app_running(ag, job, spark_cluster)
    j = ag.wait_job(job, timeout=120)
    assert j["state"] == "timed_out", j
    # ended on the cluster by the time the attempt was final
    assert spark_cluster.apps()[app] == "KILLED"


def test_kill9_agent_during_a_spark_job(spark_cluster):
    # A lease long enough that the restart gap cannot fence the attempt.
    ws = Workspace(lease_ttl="30s").start()
    ag = Agent(ws, **spark_settings(spark_cluster)).start()
    try:
        job = submit_slow(ws, 20)
        app = app_running(ag, job, spark_cluster)
        ag.kill9()
        time.sleep(2)
        assert spark_cluster.apps()[app] == "RUNNING"
        ag.start()
        j = ag.wait_job(job, timeout=180)
        log = open(os.path.join(ag.attempt_dir(job), "log"), "rb").read()
        assert j["state"] == "succeeded", (j, log[-3000:])
        assert len(j["attempts"]) == 1, j
        assert ag.ws_log(job) == log
        assert b"sums [10, 35]\n" in log
        assert spark_cluster.apps()[app] == "FINISHED"
    finally:
        if ag.alive():
            ag.kill9()
        ws.stop()


# SLOW with a thread of the driver that prints numbered ticks all along,
# each in two writes (a line is split across reads, and across the
# re-attach), and keeps a count of what it printed in the outputs.
TICKS = b"""import os, sys, threading, time
count = os.path.join(os.environ["TETHER_OUTPUTS"], "ticks")
def ticks():
    n = 0
    while True:
        for part in ("tick %d;" % n, " of the driver\\n"):
            sys.stdout.write(part)
            sys.stdout.flush()
            time.sleep(0.005)
        n += 1
        with open(count + ".new", "w") as f:
            f.write(str(n))
        os.replace(count + ".new", count)
threading.Thread(target=ticks, daemon=True).start()
""" + SLOW


def kill9_runner(ag, job):
    with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
        st = json.load(f)
    os.kill(st["runner_pid"], signal.SIGKILL)
    return st


def new_runner(ag, job, old_pid):
    """The pid of the runner the agent started on the attempt again."""
    def started():
        with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
            pid = json.load(f)["runner_pid"]
        return pid if pid != old_pid else None
    return wait_until(started, 60, interval=0.1,
                      what="the agent to start a new runner")


def driver_ticks(log):
    """The tick numbers in the log, runner lines taken out (they are whole
    lines, but may sit inside a line of the driver's)."""
    text = re.sub(rb"\[(spark|tether)\] [^\n]*\n", b"", log)
    return ([int(n) for n in re.findall(rb"tick (\d+);", text)],
            text.count(b" of the driver\n"))


def test_kill9_runner_reattaches_and_succeeds_with_one_attempt(
        workspace, agent_factory, spark_cluster):
    ag = agent_factory(**spark_settings(spark_cluster)).start()
    snap = upload_snapshot(workspace, {"slow.py": TICKS})
    job = workspace.submit({
        "name": "spark-ticks", "command": ["slow.py", "15"],
        "launcher": "spark", "source": {"snapshot": snap},
        "spark": {"executors": 2, "executor_cores": 1,
                  "executor_memory": "600m", "driver_memory": "600m"}})
    app = app_running(ag, job, spark_cluster)
    st = kill9_runner(ag, job)
    assert st["job_start"] > 0 and st["log_start"] > 0, st
    time.sleep(1)  # the driver goes on printing with no runner
    assert spark_cluster.apps()[app] == "RUNNING"
    assert open("/proc/%d/stat" % st["job_pid"]).read()  # pid 1 lives
    new = new_runner(ag, job, st["runner_pid"])
    j = ag.wait_job(job, timeout=180)
    adir = ag.attempt_dir(job)
    log = open(os.path.join(adir, "log"), "rb").read()
    assert j["state"] == "succeeded", (j, log[-3000:])
    assert len(j["attempts"]) == 1, j
    assert spark_cluster.apps()[app] == "FINISHED"
    assert b"sums [10, 35]\n" in log
    assert ag.ws_log(job) == log
    # the driver's output: every tick once, in order, none lost
    printed = int(open(os.path.join(adir, "outputs", "ticks")).read())
    got, ends = driver_ticks(log)
    assert printed > 100, printed
    assert got == list(range(len(got))), [
        (i, n) for i, n in enumerate(got) if i != n][:5]
    assert printed <= len(got) <= printed + 1, (printed, len(got))
    assert ends in (len(got), len(got) - 1), (ends, len(got))
    with open(os.path.join(adir, "state.json")) as f:
        assert json.load(f)["runner_pid"] == new
    assert not os.path.exists(os.path.join(adir, "sandbox.out"))


def test_driver_that_ends_without_a_runner_is_collected(spark_cluster):
    """Runner and agent killed: the driver ends with no runner at all; the
    restarted agent's new runner finds its status where pid 1 wrote it."""
    # A lease long enough that the gap cannot fence the attempt.
    ws = Workspace(lease_ttl="90s").start()
    ag = Agent(ws, **spark_settings(spark_cluster)).start()
    try:
        job = submit_slow(ws, 8)
        app = app_running(ag, job, spark_cluster)
        ag.kill9()
        st = kill9_runner(ag, job)
        # the driver finishes alone; pid 1 records its status and exits
        wait_until(lambda: spark_cluster.apps().get(app) == "FINISHED", 120,
                   what="the application to finish")
        wait_until(lambda: not os.path.exists("/proc/%d" % st["job_pid"]),
                   30, what="the sandbox's pid 1 to exit")
        status = os.path.join(ag.attempt_dir(job), "sandbox.status")
        assert os.stat(status).st_uid == 0
        assert os.stat(status).st_mode & 0o777 == 0o600
        ag.start()
        j = ag.wait_job(job, timeout=180)
        log = open(os.path.join(ag.attempt_dir(job), "log"), "rb").read()
        assert j["state"] == "succeeded", (j, log[-3000:])
        assert len(j["attempts"]) == 1, j
        assert b"sums [10, 35]\n" in log
        assert log.count(b"sums [10, 35]") == 1
        assert ag.ws_log(job) == log
    finally:
        if ag.alive():
            ag.kill9()
        ws.stop()


def test_cancel_after_a_runner_kill9_kills_the_application(
        workspace, agent_factory, spark_cluster):
    ag = agent_factory(**spark_settings(spark_cluster)).start()
    job = submit_slow(workspace, 600)
    app = app_running(ag, job, spark_cluster)
    st = kill9_runner(ag, job)
    new_runner(ag, job, st["runner_pid"])
    assert spark_cluster.apps()[app] == "RUNNING"
    t0 = time.monotonic()
    code, _, b = workspace.api("POST", "/api/v1/jobs/%s/cancel" % job)
    assert code in (200, 202), b
    killed_within(spark_cluster, app, t0, KILL_GRACE + 5)
    j = ag.wait_job(job, timeout=60)
    assert j["state"] == "cancelled", j
    assert len(j["attempts"]) == 1, j
    # the adopted sandbox is gone: no driver process is left
    wait_until(lambda: not os.path.exists("/proc/%d" % st["job_pid"]), 10,
               what="the sandbox to end")
    wait_until(lambda: spark_cluster.status()["coresused"] == 0, 30,
               what="the executors to end")


# The job plants a symlink where the runner (root) puts the executors'
# logs after the job: the runner must not follow it.
PLANT = b"""import os
victim = os.environ["VICTIM"]
os.symlink(victim, os.path.join(os.environ["TETHER_OUTPUTS"],
                                "spark-executors"))
""" + SLOW


def test_executor_logs_never_follow_a_link_the_job_left(workspace,
                                                         agent_factory,
                                                         spark_cluster):
    import tempfile
    victim = tempfile.mkdtemp(prefix="tether-victim-", dir="/var/tmp")
    os.chmod(victim, 0o755)  # root's: the job sees it, cannot write it
    try:
        ag = agent_factory(**spark_settings(spark_cluster)).start()
        snap = upload_snapshot(workspace, {"slow.py": PLANT})
        job = workspace.submit({
            "name": "spark-plant", "command": ["slow.py", "1"],
            "launcher": "spark", "source": {"snapshot": snap},
            "env": {"VICTIM": victim},
            "spark": {"executors": 2, "executor_cores": 1,
                      "executor_memory": "600m",
                      "driver_memory": "600m"}})
        j = ag.wait_job(job, timeout=300)
        log = open(os.path.join(ag.attempt_dir(job), "log"), "rb").read()
        assert j["state"] == "succeeded", (j, log[-3000:])
        assert os.listdir(victim) == [], "the runner followed the link"
        assert b"[spark] executor logs of app-" in log
        assert b"open spark-executors" in log, log[-3000:]
    finally:
        import shutil
        shutil.rmtree(victim, ignore_errors=True)


def test_waiting_for_executors_is_pending(workspace, agent_factory,
                                          spark_cluster):
    # A second application while the first holds both cores: the master
    # lists it WAITING and the attempt reports the `pending` sub-state.
    from harness.life import events
    ag = agent_factory(**spark_settings(spark_cluster)).start()
    first = submit_slow(workspace, 600)
    app_running(ag, first, spark_cluster)
    second = submit_slow(workspace, 1)

    def waiting():
        j = workspace.job(second)
        return j if j.get("substate") == "pending" else None
    j = wait_until(waiting, 120, interval=0.2, what="second job pending")
    assert j["substate_reason"] == "WAITING for executors", j
    st, _, b = workspace.api("POST", "/api/v1/jobs/%s/cancel" % first)
    assert st in (200, 202), b
    j = ag.wait_job(second, timeout=180)
    assert j["state"] == "succeeded", j
    pend = [e for e in events(workspace, second) if e["type"] == "pending"]
    assert [e["pending"] for e in pend] == [True, False], pend
