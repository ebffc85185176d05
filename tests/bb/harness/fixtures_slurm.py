"""pytest fixtures: one Slurm cluster per test session (harness/slurm.py)."""
import os

import pytest

from harness import slurm as _slurm


@pytest.fixture(scope="session")
def slurm_session_cluster():
    """A running single-node Slurm, shared by the session's tests; skipped
    when Slurm is not installed."""
    missing = _slurm.missing_binaries()
    if missing:
        pytest.skip("Slurm not installed (missing %s): run install/deps.sh"
                    % ", ".join(missing))
    if os.geteuid() != 0:
        pytest.skip("the Slurm harness runs slurmd as root")
    cluster = _slurm.SlurmCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm_cluster(slurm_session_cluster):
    """The session's cluster, with every job a test left in its queue
    cancelled afterwards (a failed test must not hold the next one's CPUs)."""
    yield slurm_session_cluster
    slurm_session_cluster.cancel_all()
