"""pytest fixtures for the reference workspace server."""
import pytest

from harness.workspace import Workspace


@pytest.fixture
def workspace():
    """A started workspace (TLS + loopback plain HTTP) with test durations."""
    ws = Workspace().start()
    yield ws
    ws.stop()
