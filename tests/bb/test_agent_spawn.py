"""How the agent starts a runner (agent/launch.c): an intermediate child that
shares the agent's memory spawns `tether-runner run DIR` and exits, so the
runner is no child of the agent, leads a session of its own, reads
/dev/null, writes runner.log, holds no fd of the agent, and gets the
agent's signal mask and ignored signals.  A runner that cannot be executed
ends the attempt `launch_failed` with the reason."""
import os
import stat

from harness.agent import Agent


def test_the_runner_is_spawned_detached_with_only_its_own_fds(workspace,
                                                               tmp_path):
    ctx = tmp_path / "ctx"
    wrapper = tmp_path / "recording-runner"
    real = os.path.join(os.environ["TETHER_BUILD_DIR"], "runner",
                        "tether-runner")
    # Python, not sh: dash clears the signal mask it was started with.
    wrapper.write_text(
        "#!/usr/bin/python3\n"
        "import os, sys\n"
        "me = open('/proc/self/status').read().splitlines()\n"
        "fds = sorted(int(x) for x in os.listdir('/proc/self/fd'))\n"
        "st = open('/proc/self/stat').read().rsplit(')', 1)[1].split()\n"
        "out = ['ppid %%d' %% os.getppid(), 'sid %%s' %% st[3],\n"
        "       'pid %%d' %% os.getpid(), 'fds %%s' %% ','.join(map(str, fds))]\n"
        "out += ['%%s %%s' %% (f, os.readlink('/proc/self/fd/%%d' %% f)) for f in (0, 1, 2)]\n"
        "out += [x for x in me if x.startswith(('SigBlk:', 'SigIgn:'))]\n"
        "open(%r, 'w').write('\\n'.join(out) + '\\n')\n"
        "os.execv(%r, [%r] + sys.argv[1:])\n" % (str(ctx), real, real))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    ag = Agent(workspace, runner_path=str(wrapper))
    try:
        ag.start()
        job = workspace.submit(name="spawned", command=["true"])
        ag.wait_job(job, "succeeded", timeout=60)
        lines = ctx.read_text().splitlines()
        seen = dict(line.split(None, 1) for line in lines)
        assert int(seen["ppid"]) != ag.pid, lines
        assert seen["sid"] == seen["pid"], lines  # its own session
        assert seen["0"] == "/dev/null", lines
        log = os.path.join(ag.attempt_dir(job), "runner.log")
        assert seen["1"] == seen["2"] == log, lines
        # 0-2 and the one listing /proc/self/fd: nothing of the agent's
        assert seen["fds"] in ("0,1,2,3", "0,1,2"), lines
        with open("/proc/%d/status" % ag.pid) as f:
            agent = {k: v.strip() for k, _, v in
                     (line.partition(":") for line in f)}
        assert seen["SigBlk:"] == agent["SigBlk"], (lines, agent["SigBlk"])
        # what the agent ignores stays ignored (Python adds its own)
        ign = int(agent["SigIgn"], 16)
        assert int(seen["SigIgn:"], 16) & ign == ign, (lines, agent["SigIgn"])
    finally:
        if ag.alive():
            ag.kill9()


def test_a_runner_that_cannot_be_executed_fails_the_launch(workspace,
                                                           tmp_path):
    runner = tmp_path / "not-executable"
    runner.write_text("#!/bin/sh\nexit 0\n")
    runner.chmod(0o644)
    ag = Agent(workspace, runner_path=str(runner))
    try:
        ag.start()
        job = workspace.submit(name="noexec", command=["true"], retries=0)
        j = ag.wait_job(job, "launch_failed", timeout=30)
        msg = j["attempts"][0]["message"] or ""
        assert "cannot execute %s: Permission denied" % runner in msg, j
        assert ag.alive()
    finally:
        if ag.alive():
            ag.kill9()
