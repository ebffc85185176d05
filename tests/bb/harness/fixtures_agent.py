"""pytest fixtures for tether-agent tests."""
import pytest

from harness.agent import Agent


@pytest.fixture
def agent_factory(workspace):
    """Make agents attached to the `workspace` fixture; all stopped at the
    end (SIGKILL: a test that wants a drain does it itself)."""
    made = []

    def make(**kw):
        ag = Agent(workspace, **kw)
        made.append(ag)
        return ag
    yield make
    for ag in made:
        if ag.alive():
            ag.kill9()


@pytest.fixture
def agent(agent_factory):
    """A started agent registered with the `workspace` fixture."""
    return agent_factory().start()
