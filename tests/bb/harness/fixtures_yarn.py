"""pytest fixtures: Hadoop's mini YARN for a test session (harness/yarn.py)."""
import pytest

from harness import yarn as _yarn


@pytest.fixture(scope="session")
def yarn_cluster():
    why = _yarn.missing()
    if why:
        pytest.skip(why)
    cluster = _yarn.YarnCluster().start()
    yield cluster
    cluster.stop()
