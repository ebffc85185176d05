"""The spark launcher against a real Spark standalone cluster (issue 27):
the digits example runs through workspace -> agent -> spark-submit ->
executors and succeeds with its driver log byte-exact at the workspace, and
the same job runs with master local[2] on a node without a cluster; a job
asking for more cores than the cluster has, or cluster deploy mode, is
refused naming the field; a
job's venv is packed (once per environment) and shipped to the executors,
which import a package only the venv has."""
import json
import os
import re
import subprocess
import tempfile

from harness import spark
from harness.common import SOURCE_DIR
from harness.life import upload_snapshot

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "spark-digits")


def example(name):
    with open(os.path.join(EXAMPLE, name)) as f:
        return json.load(f)


def snapshot(ws, files=None):
    with open(os.path.join(EXAMPLE, "train.py"), "rb") as f:
        data = {"train.py": f.read()}
    data.update(files or {})
    return upload_snapshot(ws, data)


def spark_agent(agent_factory, cluster, **kw):
    # spark_home: the test Spark lives in its venv (install/deps.sh), not on
    # PATH; spark_master_ui: the harness's master serves its UI on a free
    # port, not the default 8080.
    settings = {"spark_home": cluster.home}
    if cluster is not None and kw.pop("with_master", True):
        settings.update(spark_master=cluster.master,
                        spark_master_ui=cluster.ui)
    settings.update(kw)
    return agent_factory(**settings).start()


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def app_id(ag, job):
    with open(os.path.join(ag.attempt_dir(job), "state.json")) as f:
        return json.load(f)["launcher_ref"]


def metrics(ag, job):
    return json.loads(read(os.path.join(ag.attempt_dir(job), "outputs",
                                        "metrics.json")))


def test_digits_on_the_standalone_cluster(workspace, agent_factory,
                                          spark_cluster):
    ag = spark_agent(agent_factory, spark_cluster)
    spec = example("job.json")
    job = workspace.submit(spec, source={"snapshot": snapshot(workspace)})
    j = ag.wait_job(job, timeout=400)
    log = read(os.path.join(ag.attempt_dir(job), "log"))
    assert j["state"] == "succeeded", (j, log[-4000:])
    assert len(j["attempts"]) == 1, j
    # the driver's output, byte for byte, at the workspace
    assert ag.ws_log(job) == log
    app = app_id(ag, job)
    assert app.startswith("app-"), app
    assert b"application %s master %s\n" % (
        app.encode(), spark_cluster.master.encode()) in log
    assert b"[spark] application %s ended FINISHED\n" % app.encode() in log
    assert spark_cluster.apps()[app] == "FINISHED"
    m = metrics(ag, job)
    assert m["accuracy"] > 0.8 and m["executors"] == 2, m
    assert m["application"] == app
    # the event log names the application (how the runner found it)
    events = os.listdir(os.path.join(ag.attempt_dir(job), "outputs",
                                     "spark-events"))
    assert [e.split(".")[0] for e in events] == [app], events
    # the executors' logs, fetched from the workers, are outputs
    ex = os.path.join(ag.attempt_dir(job), "outputs", "spark-executors", app)
    assert sorted(os.listdir(ex)) == ["0", "1"], os.listdir(ex)
    for e in ("0", "1"):
        err = read(os.path.join(ex, e, "stderr"))
        assert b"CoarseGrainedExecutorBackend" in err, err[-2000:]
        assert os.path.exists(os.path.join(ex, e, "stdout"))
    # ... uploaded to the workspace with the metrics and the event log
    st, _, b = workspace.api("GET", "/api/v1/jobs/%s/outputs" % job)
    assert st == 200, b
    paths = {o["path"] for o in b["outputs"]}
    for e in ("0", "1"):
        assert "spark-executors/%s/%s/stderr" % (app, e) in paths, paths
    assert "metrics.json" in paths, paths
    # spark.json says the same
    sj = json.loads(read(os.path.join(ag.attempt_dir(job), "spark.json")))
    assert sj["apps"] == [app] and sj["state"] == "FINISHED", sj


def test_digits_with_local_master_and_no_cluster(workspace, agent_factory,
                                                 spark_cluster):
    # A node without a cluster: no spark_master in the agent's config.
    ag = spark_agent(agent_factory, spark_cluster, with_master=False)
    spec = example("job-local.json")
    apps_before = set(spark_cluster.apps())
    job = workspace.submit(spec, source={"snapshot": snapshot(workspace)})
    j = ag.wait_job(job, timeout=400)
    log = read(os.path.join(ag.attempt_dir(job), "log"))
    assert j["state"] == "succeeded", (j, log[-4000:])
    assert ag.ws_log(job) == log
    m = metrics(ag, job)
    assert m["master"] == "local[2]" and m["accuracy"] > 0.8, m
    assert app_id(ag, job).startswith("local-")
    assert set(spark_cluster.apps()) == apps_before, "ran on the cluster"


def test_more_cores_than_the_cluster_is_refused(workspace, agent_factory,
                                                spark_cluster):
    ag = spark_agent(agent_factory, spark_cluster)
    cores = spark_cluster.status()["cores"]
    too_many = workspace.submit(
        name="too-many", command=["train.py"], launcher="spark",
        spark={"executors": cores + 1, "executor_cores": 1},
        source={"snapshot": snapshot(workspace)})
    too_wide = workspace.submit(
        name="too-wide", command=["train.py"], launcher="spark",
        spark={"executors": 1, "executor_cores": spark.WORKER_CORES + 1},
        source={"snapshot": snapshot(workspace)})
    for job, field in ((too_many, b"spark.executors x spark.executor_cores"),
                       (too_wide, b"spark.executor_cores: ")):
        j = ag.wait_job(job, timeout=120)
        assert j["state"] == "launch_failed", j
        a = j["attempts"][0]
        assert a["reason"] == "launch_failed", a
        log = read(os.path.join(ag.attempt_dir(job), "log"))
        assert field in log, log
        assert field.decode() in (a.get("message") or ""), a
    assert not [a for a in spark_cluster.status()["activeapps"]]


def test_cluster_deploy_mode_is_refused_naming_the_field(workspace,
                                                         agent_factory,
                                                         spark_cluster):
    # docs/spark.md: client mode only, on every master (the runner would
    # have to follow a driver on the cluster; PySpark cannot run in cluster
    # mode on a standalone cluster at all)
    ag = spark_agent(agent_factory, spark_cluster)
    apps_before = set(spark_cluster.apps())
    jobs = [workspace.submit(
        name="cluster-mode", command=["train.py"], launcher="spark",
        spark=dict(master, deploy_mode="cluster"),
        source={"snapshot": snapshot(workspace)})
        for master in ({}, {"master": "local[1]"})]
    for job in jobs:
        j = ag.wait_job(job, timeout=120)
        assert j["state"] == "launch_failed", j
        a = j["attempts"][0]
        assert "spark.deploy_mode: 'cluster' is not supported" in \
            (a.get("message") or ""), a
    assert set(spark_cluster.apps()) == apps_before, "ran on the cluster"


def test_agent_reports_the_cluster_and_doctor_checks_it(workspace,
                                                        agent_factory,
                                                        spark_cluster):
    from harness.common import binary, run
    ag = spark_agent(agent_factory, spark_cluster)

    def reported():
        st, _, b = workspace.api("GET", "/api/v1/agents")
        assert st == 200, b
        mine = [a for a in b["agents"] if a["name"] == ag.name][0]
        return mine["capacity"].get("spark")
    sp = spark.wait_until(reported, 30, what="capacity.spark")
    assert sp["master"] == spark_cluster.master, sp
    assert sp["workers"] == 2 and sp["cores"] == 2, sp
    assert sp["worker_cores"] == spark.WORKER_CORES, sp
    assert sp["worker_memory"] == 1 << 30 and sp["memory"] == 2 << 30, sp
    assert 0 <= sp["idle_cores"] <= 2, sp

    r = run([binary("tether-agent"), "doctor", "--config", ag.conf],
            check=False, env=ag.env(), timeout=120)
    lines = {l.split(None, 2)[1]: l for l in r.stdout.splitlines()
             if l.split(None, 1)[:1] in (["ok"], ["info"], ["warn"],
                                          ["FAIL"])}
    assert lines["spark"].startswith("ok"), r.stdout
    assert "openjdk version" in lines["spark"], lines["spark"]
    assert lines["spark-master"].startswith("ok"), r.stdout
    assert "2 live workers, 2 cores" in lines["spark-master"]
    # an unreachable master is a failure naming it and the fix
    r = run([binary("tether-agent"), "doctor", "--config", ag.conf, "--set",
             "spark_master_ui=http://127.0.0.1:%d" % spark.free_port()],
            check=False, env=ag.env(), timeout=120)
    bad = [l for l in r.stdout.splitlines() if " spark-master " in l][0]
    assert bad.startswith("FAIL") and "spark_master_ui" in bad, bad
    assert r.returncode != 0


# The job's venv has a package nothing else on the node has; the executors
# import it, and say which Python ran them.
VENV_JOB = b"""import sys
from pyspark.sql import SparkSession

sc = SparkSession.builder.getOrCreate().sparkContext
sc.setLogLevel("WARN")


def probe(it):
    import sys
    import tinyspark
    return [(tinyspark.VALUE, sys.prefix)]


for value, prefix in sc.parallelize(range(2), 2).mapPartitions(probe).collect():
    print("executor", value, prefix, flush=True)
"""


def tiny_wheel():
    """tinyspark-1.0-py3-none-any.whl (built offline), as bytes."""
    d = tempfile.mkdtemp(prefix="tether-tinyspark-")
    src = os.path.join(d, "src")
    os.makedirs(os.path.join(src, "tinyspark"))
    with open(os.path.join(src, "tinyspark", "__init__.py"), "w") as f:
        f.write("VALUE = 4242\n")
    with open(os.path.join(src, "pyproject.toml"), "w") as f:
        f.write('[build-system]\nrequires = ["setuptools"]\n'
                'build-backend = "setuptools.build_meta"\n'
                '[project]\nname = "tinyspark"\nversion = "1.0"\n')
    subprocess.run(["/usr/bin/python3", "-m", "pip", "wheel", "-q",
                    "--no-index", "--no-deps", "--no-build-isolation", "-w",
                    os.path.join(d, "wheels"), src], check=True)
    return read(os.path.join(d, "wheels", WHEEL))


WHEEL = "tinyspark-1.0-py3-none-any.whl"


def test_venv_shipped_to_the_executors(workspace, agent_factory,
                                       spark_cluster):
    ag = spark_agent(agent_factory, spark_cluster)
    snap = upload_snapshot(workspace, {"venvjob.py": VENV_JOB,
                                       "wheels/" + WHEEL: tiny_wheel()})
    spec = {"name": "spark-venv", "command": ["venvjob.py"],
            "launcher": "spark", "source": {"snapshot": snap},
            "environment": {"kind": "venv",
                            "requirements": ["./wheels/" + WHEEL],
                            "pip_options": ["--no-index"]},
            "spark": {"executors": 2, "executor_cores": 1,
                      "executor_memory": "600m", "driver_memory": "600m"}}
    logs = []
    for _ in range(2):  # the second packs nothing: the archive is cached
        job = workspace.submit(spec)
        j = ag.wait_job(job, timeout=400)
        log = read(os.path.join(ag.attempt_dir(job), "log"))
        assert j["state"] == "succeeded", (j, log[-4000:])
        logs.append(log)
    # both executors ran the job's environment, unpacked in their own
    # directories (not the head node's prefix), and imported its package
    lines = re.findall(rb"executor (\d+) (\S+)\n", logs[0])
    assert len(lines) == 2, logs[0][-3000:]
    for value, prefix in lines:
        assert value == b"4242", lines
        assert prefix.endswith(b"/tether-env"), lines
        assert b"/envs/" not in prefix, lines
    assert re.search(rb"\[spark\] environment \w{12} packed for the "
                     rb"executors: \d+ files", logs[0]), logs[0][-3000:]
    assert re.search(rb"\[spark\] environment \w{12} for the executors: "
                     rb"cached", logs[1]), logs[1][-3000:]
    assert len(re.findall(rb"executor 4242 ", logs[1])) == 2
