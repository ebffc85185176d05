"""The spark launcher with master "yarn" (issue 27): the digits example runs
through workspace -> agent -> spark-submit --master yarn -> a real YARN
(Hadoop's MiniYARNCluster from Maven Central, harness/yarn.py) and
succeeds, its application found by the event log (application_...)."""
import json
import os

from harness.spark import spark_home
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
    # stages in HDFS or cloud storage instead).
    ag = agent_factory(spark_home=home,
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
