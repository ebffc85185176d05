"""pytest fixtures: one Spark standalone cluster per test session
(harness/spark.py)."""
import pytest

from harness import spark as _spark


@pytest.fixture(scope="session")
def spark_session_cluster():
    """A running master and two workers on loopback, shared by the
    session's tests; skipped when Spark or Java is not installed."""
    why = _spark.missing()
    if why:
        pytest.skip(why)
    cluster = _spark.SparkCluster().start()
    yield cluster
    cluster.kill_all()
    cluster.stop()


@pytest.fixture
def spark_cluster(spark_session_cluster):
    """The session's cluster, with every application a test left running
    killed afterwards (a failed test must not hold the next one's cores)."""
    yield spark_session_cluster
    spark_session_cluster.kill_all()
