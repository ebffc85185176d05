"""The agent takes the next job at once after a job ends, whatever its
heartbeat_interval (docs/performance.md F1): the reply that tells it an
attempt ended, or a slot that frees up, makes it poll again at once."""
import time

import pytest

from harness.agent import stamps

SLOW_HEARTBEAT = "20s"


@pytest.mark.parametrize("prefetch", [0, 1])
def test_next_job_starts_at_once_after_a_job_ends(workspace, agent_factory,
                                                   prefetch):
    ag = agent_factory(heartbeat_interval=SLOW_HEARTBEAT, max_jobs=1,
                       prefetch=prefetch).start()
    a = workspace.submit(name="a", command=["true"])
    ag.wait_job(a, "succeeded", timeout=30)
    sent = time.time()
    b = workspace.submit(name="b", command=["date", "+%s.%N"])
    ag.wait_job(b, "succeeded", timeout=30)
    started = stamps(ag.ws_log(b))[0]
    # far under the 20 s heartbeat: the agent did not wait for its next tick
    assert started - sent < 3.0, (started - sent, ag.output()[-4000:])
    # the job that succeeded was not reported lost by the workspace
    assert "lost at the workspace" not in ag.output(), ag.output()[-4000:]
