"""pytest fixtures for tether-agent tests."""
import pytest

from harness.agent import Agent


def agents_made_by(new):
    """The body of an agent_factory fixture: yields make(**kw), new(**kw)
    remembered; the agents still alive at the end get SIGKILL (a test that
    wants a drain does it itself)."""
    made = []

    def make(**kw):
        ag = new(**kw)
        made.append(ag)
        return ag
    yield make
    for ag in made:
        if ag.alive():
            ag.kill9()


@pytest.fixture
def agent_factory(workspace):
    """Make agents attached to the `workspace` fixture; all stopped at the
    end."""
    yield from agents_made_by(lambda **kw: Agent(workspace, **kw))


@pytest.fixture
def agent(agent_factory):
    """A started agent registered with the `workspace` fixture."""
    return agent_factory().start()
