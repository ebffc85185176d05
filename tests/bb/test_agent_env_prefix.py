"""The agent's environment overrides are TETHER_AGENT_<KEY>: an admin shell
with the CLI's TETHER_TOKEN / TETHER_WORKSPACE set starts an agent that
still registers with agent.conf's token and workspace."""
import os

from harness.common import wait_until


def _mine(workspace, name):
    st, _, body = workspace.api("GET", "/api/v1/agents")
    return [a for a in body["agents"] if a["name"] == name]


def test_cli_variables_do_not_reach_the_agent(workspace, agent_factory):
    ag = agent_factory()
    ag.settings["token"] = workspace.token()
    ag.write_conf()
    base = ag.env()
    name = ag.name + "-env"

    def env():
        e = dict(base)
        e.update(TETHER_TOKEN=workspace.admin_token,
                 TETHER_WORKSPACE="https://127.0.0.1:1",
                 TETHER_NAME="wrong-name", TETHER_MAX_JOBS="0",
                 TETHER_AGENT_NAME=name,
                 TETHER_AGENT_MAX_JOBS="3")
        return e
    ag.env = env
    ag.name = name
    ag.start()  # registers: the admin token did not replace agent.conf's
    agents = wait_until(lambda: _mine(workspace, ag.name), 10,
                        what="the agent registered under TETHER_AGENT_NAME")
    assert agents[0]["state"] == "online"
    assert not _mine(workspace, "wrong-name")
    job = workspace.submit(name="p", command=["sh", "-c", "env"])
    ag.wait_job(job, "succeeded", timeout=30)
    log = ag.ws_log(job).decode()
    assert "TETHER_AGENT_" not in log and workspace.admin_token not in log
