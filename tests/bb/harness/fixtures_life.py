"""pytest fixtures for the lifecycle tests."""
import pytest

from harness.life import ScheduledEvents


@pytest.fixture
def scheduled_events():
    """A local scheduled-events endpoint (Azure's format), no events."""
    se = ScheduledEvents()
    yield se
    se.close()
