"""The spark launcher with master "yarn" (issue 27): the digits example runs
through workspace -> agent -> spark-submit --master yarn -> a real YARN
(Hadoop's MiniYARNCluster from Maven Central, harness/yarn.py) and
succeeds, its application found by the event log (application_...), its
containers' logs fetched with `yarn logs` as outputs.
Through the yarn command (harness/yarn/yarn runs Hadoop's own CLI classes,
as a Hadoop install's bin/yarn does): the agent reports the node managers
as capacity.spark and doctor checks them; a job asking for more than the
cluster has is refused naming the field; cancel ends the application
KILLED on the cluster within kill_grace + 5 s; an application of someone
else's whose id the job writes into its event log directory is never
killed."""
import json
import os
import re
import time

import pytest

from harness.common import binary, run, tmpdir, wait_until
from harness.yarn import YARN_COMMAND

from harness.spark import ADVERTISE, KILL_GRACE, SLOW, spark_home
from harness.life import upload_snapshot
from harness.common import SOURCE_DIR

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "spark-digits")


def test_digits_on_yarn(workspace, agent_factory, yarn_cluster):
    home = spark_home()
    if home is None:
        import pytest
        pytest.skip("no Spark: run install/deps.sh")
    # spark_home: the test Spark is in its venv, not on PATH.
    # allowed_mounts: the YARN staging directory, which the sandboxed driver
    # writes and the NodeManager reads at the same path (a real cluster
    # stages in HDFS or cloud storage instead); yarn_command and
    # yarn_conf_dir: the runner lists the node managers before it submits
    # (there is no Hadoop install here: the harness's yarn command).  The
    # job names the master and sets HADOOP_CONF_DIR itself (its env wins).
    ag = agent_factory(spark_home=home, yarn_command=YARN_COMMAND,
                       yarn_conf_dir=yarn_cluster.conf_dir,
                       allowed_mounts=yarn_cluster.staging + ":rw").start()
    with open(os.path.join(EXAMPLE, "train.py"), "rb") as f:
        snap = upload_snapshot(workspace, {"train.py": f.read()})
    with open(os.path.join(EXAMPLE, "job.json")) as f:
        spec = json.load(f)
    spec["spark"].update(master="yarn", conf={
        "spark.yarn.stagingDir": "file://" + yarn_cluster.staging,
        "spark.yarn.am.memory": "512m"})
    spec.update(source={"snapshot": snap},
                env={"HADOOP_CONF_DIR": yarn_cluster.conf_dir},
                mounts=[{"source": yarn_cluster.staging, "readonly": False}])
    job = workspace.submit(spec)
    j = ag.wait_job(job, timeout=900)
    log = open(os.path.join(ag.attempt_dir(job), "log"), "rb").read()
    assert j["state"] == "succeeded", (j, log[-5000:])
    assert ag.ws_log(job) == log
    with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
        app = json.load(f)["launcher_ref"]
    assert app.startswith("application_"), app
    with open(os.path.join(ag.attempt_dir(job), "outputs",
                           "metrics.json")) as f:
        m = json.load(f)
    assert m["master"] == "yarn" and m["application"] == app, m
    assert m["accuracy"] > 0.8 and m["executors"] == 2, m
    # the containers' logs, aggregated by the NodeManager and fetched with
    # `yarn logs`, are outputs: the application master's and each
    # executor's
    ex = os.path.join(ag.attempt_dir(job), "outputs", "spark-executors", app)
    containers = sorted(os.listdir(ex))
    assert len(containers) == 3, containers
    assert all(c.startswith("container_") for c in containers), containers
    errs = [open(os.path.join(ex, c, "stderr"), "rb").read()
            for c in containers]
    assert b"ApplicationMaster" in errs[0], errs[0][-2000:]
    for e in errs[1:]:
        assert b"CoarseGrainedExecutorBackend" in e, e[-2000:]
    assert b"[spark] executor logs of %s: 3 containers in " \
        b"outputs/spark-executors/%s\n" % (app.encode(), app.encode()) in log
    st, _, b = workspace.api("GET", "/api/v1/jobs/%s/outputs" % job)
    assert st == 200, b
    paths = {o["path"] for o in b["outputs"]}
    for c in containers:
        assert "spark-executors/%s/%s/stderr" % (app, c) in paths, paths


def yarn_agent(agent_factory, cluster, yarn_command=YARN_COMMAND):
    home = spark_home()
    if home is None:
        pytest.skip("no Spark: run install/deps.sh")
    # spark_home: the test Spark is in its venv, not on PATH;
    # spark_master yarn with the harness's yarn command (there is no Hadoop
    # install here) and the mini cluster's client configuration;
    # allowed_mounts: the YARN staging directory (see test_digits_on_yarn).
    return agent_factory(spark_home=home, spark_master="yarn",
                         yarn_command=yarn_command,
                         yarn_conf_dir=cluster.conf_dir,
                         allowed_mounts=cluster.staging + ":rw").start()


def yarn_spec(cluster, **spec):
    """A spark job for the mini YARN: HADOOP_CONF_DIR comes from the
    agent's yarn_conf_dir (the job does not set it)."""
    full = {"launcher": "spark",
            "mounts": [{"source": cluster.staging, "readonly": False}]}
    full.update(spec)
    full["spark"] = dict(spec.get("spark", {}), conf={
        "spark.yarn.stagingDir": "file://" + cluster.staging,
        "spark.yarn.am.memory": "512m"})
    return full


def test_agent_reports_yarn_and_doctor_checks_it(workspace, agent_factory,
                                                  yarn_cluster):
    ag = yarn_agent(agent_factory, yarn_cluster)

    def reported():
        st, _, b = workspace.api("GET", "/api/v1/agents")
        assert st == 200, b
        mine = [a for a in b["agents"] if a["name"] == ag.name][0]
        return mine["capacity"].get("spark")
    # the first `yarn node -list` runs at the agent's start (one JVM)
    sp = wait_until(reported, 60, what="capacity.spark")
    # MiniYarn.java: one NodeManager of 4 vcores and 4096 MiB
    assert sp["master"] == "yarn" and sp["workers"] == 1, sp
    assert sp["cores"] == 4 and sp["worker_cores"] == 4, sp
    assert sp["memory"] == 4096 << 20 == sp["worker_memory"], sp
    assert 0 <= sp["idle_cores"] <= 4, sp

    r = run([binary("tether-agent"), "doctor", "--config", ag.conf],
            check=False, env=ag.env(), timeout=120)
    bad = [l for l in r.stdout.splitlines() if " spark-master " in l]
    assert bad and bad[0].startswith("ok"), r.stdout
    assert "1 running node managers, 4 vcores" in bad[0], bad[0]
    # a yarn command that does not answer fails, naming it
    r = run([binary("tether-agent"), "doctor", "--config", ag.conf, "--set",
             "yarn_command=/nonexistent/yarn"],
            check=False, env=ag.env(), timeout=120)
    bad = [l for l in r.stdout.splitlines() if " spark-master " in l][0]
    assert bad.startswith("FAIL") and "/nonexistent/yarn" in bad, bad
    assert r.returncode != 0


def test_more_than_yarn_has_is_refused(workspace, agent_factory,
                                       yarn_cluster):
    ag = yarn_agent(agent_factory, yarn_cluster)
    snap = upload_snapshot(workspace, {"slow.py": SLOW})
    too_many = workspace.submit(yarn_spec(
        yarn_cluster, name="too-many", command=["slow.py", "1"],
        source={"snapshot": snap},
        spark={"executors": 5, "executor_cores": 1}))
    too_wide = workspace.submit(yarn_spec(
        yarn_cluster, name="too-wide", command=["slow.py", "1"],
        source={"snapshot": snap},
        spark={"executors": 1, "executor_cores": 5}))
    for job, field in ((too_many, "spark.executors x spark.executor_cores"),
                       (too_wide, "spark.executor_cores: ")):
        j = ag.wait_job(job, timeout=120)
        assert j["state"] == "launch_failed", j
        a = j["attempts"][0]
        assert field in (a.get("message") or ""), a
        assert "more than" in a["message"] and "yarn" in a["message"], a


def test_cancel_kills_the_application_on_yarn(workspace, agent_factory,
                                              yarn_cluster):
    ag = yarn_agent(agent_factory, yarn_cluster)
    snap = upload_snapshot(workspace, {"slow.py": SLOW})
    job = workspace.submit(yarn_spec(
        yarn_cluster, name="yarn-slow", command=["slow.py", "600"],
        source={"snapshot": snap},
        spark={"executors": 2, "executor_cores": 1,
               "executor_memory": "600m", "driver_memory": "600m"},
        resources={"cpus": 1, "memory": "2G"}))
    log_path = os.path.join(ag.attempt_dir(job), "log")

    app = wait_app_running(ag, job)
    assert yarn_cluster.app_state(app) == "RUNNING"
    t0 = time.monotonic()
    st, _, b = workspace.api("POST", "/api/v1/jobs/%s/cancel" % job)
    assert st in (200, 202), b
    wait_until(lambda: yarn_cluster.app_state(app) == "KILLED", 60,
               interval=0.2, what="YARN to list %s KILLED" % app)
    took = time.monotonic() - t0
    print("KILLED on YARN %.1fs after the cancel" % took)
    assert took <= KILL_GRACE + 5, "KILLED after %.1fs" % took
    j = ag.wait_job(job, timeout=60)
    assert j["state"] == "cancelled", j
    log = open(log_path, "rb").read()
    assert b"[spark] application %s killed on yarn\n" % app.encode() in log
    assert b"[spark] application %s ended KILLED\n" % app.encode() in log


def submit_slow(workspace, cluster, secs, **spec):
    snap = upload_snapshot(workspace, {"slow.py": SLOW})
    return workspace.submit(yarn_spec(
        cluster, name="yarn-slow", command=["slow.py", str(secs)],
        source={"snapshot": snap},
        spark={"executors": 2, "executor_cores": 1,
               "executor_memory": "600m", "driver_memory": "600m"},
        resources={"cpus": 1, "memory": "2G"}, **spec))


def app_of(ag, job):
    with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
        return json.load(f).get("launcher_ref")


def wait_app_running(ag, job):
    """The job's application id once state.json has it and the driver
    printed it (the Spark context is up)."""
    log_path = os.path.join(ag.attempt_dir(job), "log")

    def running():
        try:
            app = app_of(ag, job)
            log = open(log_path, "rb").read()
        except (OSError, ValueError):
            return None
        return app if app and b"application " + app.encode() in log \
            else None
    return wait_until(running, 300, interval=0.5,
                      what="the YARN application to run")


def test_timeout_kills_the_application_on_yarn(workspace, agent_factory,
                                               yarn_cluster):
    ag = yarn_agent(agent_factory, yarn_cluster)
    # timeout: long enough for the application to start on the mini YARN
    job = submit_slow(workspace, yarn_cluster, 600, timeout="60s")
    j = ag.wait_job(job, timeout=180)
    assert j["state"] == "timed_out", j
    app = app_of(ag, job)
    assert app and app.startswith("application_"), app
    # ended on the cluster by the time the attempt was final
    assert yarn_cluster.app_state(app) == "KILLED"
    log = open(os.path.join(ag.attempt_dir(job), "log"), "rb").read()
    assert b"[spark] application %s killed on yarn\n" % app.encode() in log


def test_killed_on_yarn_by_someone_else_is_cancelled(workspace,
                                                     agent_factory,
                                                     yarn_cluster):
    ag = yarn_agent(agent_factory, yarn_cluster)
    job = submit_slow(workspace, yarn_cluster, 600)
    log_path = os.path.join(ag.attempt_dir(job), "log")

    app = wait_app_running(ag, job)
    # an administrator's `yarn application -kill`: the final state
    # (application -status: KILLED) is the attempt's reason
    yarn_cluster.cli("application", "-kill", app)
    j = ag.wait_job(job, timeout=120)
    log = open(log_path, "rb").read()
    assert b"[spark] application %s ended KILLED\n" % app.encode() in log
    assert j["attempts"][0]["reason"] == "cancelled", (j, log[-3000:])


def test_a_foreign_application_on_yarn_is_never_killed(workspace,
                                                       agent_factory,
                                                       yarn_cluster):
    # Someone else's application on the same YARN (the test's own
    # spark-submit) ...
    other, foreign = yarn_cluster.submit_foreign("someone-else")
    try:
        ag = yarn_agent(agent_factory, yarn_cluster)
        snap = upload_snapshot(workspace, {"slow.py": ADVERTISE})
        # ... whose id the job writes into its event log directory
        job = workspace.submit(yarn_spec(
            yarn_cluster, name="yarn-advertise",
            command=["slow.py", "600", foreign], source={"snapshot": snap},
            spark={"executors": 1, "executor_cores": 1,
                   "executor_memory": "600m", "driver_memory": "600m"},
            resources={"cpus": 1, "memory": "2G"}))
        log_path = os.path.join(ag.attempt_dir(job), "log")
        sj_path = os.path.join(ag.attempt_dir(job), "spark.json")

        def seen():
            # the job advertised it and the runner has seen it
            log = open(log_path, "rb").read()
            with open(sj_path) as f:
                sj = json.load(f)
            return b"advertised %s\n" % foreign.encode() in log and \
                foreign in sj["apps"] + sj.get("foreign", [])
        wait_until(seen, 300, interval=0.5, what="the job to advertise it")
        # the job's own application, as its driver printed it
        m = re.search(rb"\napplication (application_\d+_\d+)\n",
                      open(log_path, "rb").read())
        assert m, open(log_path, "rb").read()[-3000:]
        app = m.group(1).decode()
        st, _, b = workspace.api("POST", "/api/v1/jobs/%s/cancel" % job)
        assert st in (200, 202), b
        j = ag.wait_job(job, timeout=120)
        log = open(log_path, "rb").read()
        assert j["state"] == "cancelled", (j, log[-3000:])
        # the job's own application was killed, the other one runs on
        assert yarn_cluster.app_state(app) == "KILLED"
        assert yarn_cluster.app_state(foreign) == "RUNNING", log[-3000:]
        assert b"[spark] application %s killed on yarn\n" % app.encode() \
            in log
        assert b"application %s killed" % foreign.encode() not in log
        assert b"%s in spark-events is not this job's application" % (
            foreign.encode()) in log
        assert app_of(ag, job) == app
        with open(sj_path) as f:
            sj = json.load(f)
        assert sj["apps"] == [app] and sj["foreign"] == [foreign], sj
    finally:
        other.stop()
        try:  # its driver is gone; YARN ends it in a while by itself
            yarn_cluster.cli("application", "-kill", foreign)
        except AssertionError:
            pass


# The harness's yarn, except that `yarn application -kill` never answers
# (a ResourceManager that does not respond).
HANGING_KILL = """#!/bin/sh
[ "$1 $2" = "application -kill" ] && exec sleep 600
exec %s "$@"
""" % YARN_COMMAND


def test_a_hung_yarn_kill_does_not_hold_the_cancel(workspace, agent_factory,
                                                   yarn_cluster):
    d = tmpdir("tether-yarn-hang-")
    hang = os.path.join(d, "yarn")
    with open(hang, "w") as f:
        f.write(HANGING_KILL)
    os.chmod(d, 0o755)
    os.chmod(hang, 0o755)
    # yarn_command: the hanging one (the setting under test)
    ag = yarn_agent(agent_factory, yarn_cluster, yarn_command=hang)
    job = submit_slow(workspace, yarn_cluster, 600)
    log_path = os.path.join(ag.attempt_dir(job), "log")

    app = wait_app_running(ag, job)
    t0 = time.monotonic()
    st, _, b = workspace.api("POST", "/api/v1/jobs/%s/cancel" % job)
    assert st in (200, 202), b
    # the driver has ended and the runner collects it (its final state is
    # logged before the containers' logs are fetched)
    wait_until(lambda: b"[spark] application %s ended " % app.encode() in
               open(log_path, "rb").read(), 120, interval=0.2,
               what="the driver to end")
    took = time.monotonic() - t0
    j = ag.wait_job(job, timeout=180)
    log = open(log_path, "rb").read()
    print("driver collected %.1fs after the cancel, the kill hanging" % took)
    assert j["state"] == "cancelled", (j, log[-3000:])
    # one `yarn application -kill`, stopped at its 10 s deadline; the
    # sandbox is signalled then (before: 30 s, and again at kill)
    assert log.count(b"[spark] kill %s: " % app.encode()) == 1, log[-3000:]
    assert b"no answer within" in log, log[-3000:]
    assert took < KILL_GRACE + 10 + 10, "collected after %.1fs" % took
