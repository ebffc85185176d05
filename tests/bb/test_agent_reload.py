"""SIGHUP re-reads agent.conf: live keys (max_jobs, capacity overrides, log
level...) apply at once, keys consumed at start are logged as needing a
restart, and a broken file keeps the running settings."""
import signal

from harness.common import wait_until


def _cpus(workspace, ag):
    st, _, body = workspace.api("GET", "/api/v1/agents")
    return [a for a in body["agents"]
            if a["name"] == ag.name][0]["capacity"]["cpus"]


def test_sighup_reloads_agent_conf(workspace, agent_factory):
    ag = agent_factory(max_jobs=1, cpus=1.5).start()
    wait_until(lambda: _cpus(workspace, ag) == 1.5, 30)
    # A broken file: the running settings stay.
    ag.settings["max_jobs"] = "many"
    ag.write_conf()
    ag.signal(signal.SIGHUP)
    wait_until(lambda: "keeping the running settings" in ag.output(), 10,
               what="the refused reload")
    assert ag.alive()

    ag.settings.update(max_jobs="2", cpus="1.25", log_level="info",
                       connect_timeout="3s")
    ag.write_conf()
    mark = len(ag.output())
    ag.signal(signal.SIGHUP)
    wait_until(lambda: "reload: max_jobs changed (applied)" in ag.output(),
               10, what="the reload")
    out = ag.output()[mark:]
    assert "reload: cpus changed (applied)" in out
    assert "reload: connect_timeout changed; it takes effect after a " \
        "restart" in out
    # The new capacity reaches the workspace.
    wait_until(lambda: _cpus(workspace, ag) == 1.25, 30,
               what="the new capacity in the workspace")
    # max_jobs 2: two jobs run side by side.
    jobs = [workspace.submit(name="r%d" % i, resources={"cpus": 0.5},
                             command=["sh", "-c", "sleep 5"])
            for i in range(2)]
    wait_until(lambda: all(ag.local_state(j) == "running" for j in jobs),
               30, what="both jobs running at once")
    for j in jobs:
        ag.wait_job(j, "succeeded", timeout=30)
    # log_level info: no debug line after the reload was applied.
    tail = ag.output()[mark:]
    tail = tail[tail.index("reload: max_jobs changed"):]
    assert "level=debug" not in tail
