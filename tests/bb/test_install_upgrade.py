"""Upgrade during a running job, the way install.sh and the systemd unit do
it: new binaries installed as new files (install -m 0755), the agent told to
exit at once (SIGQUIT: the unit's KillSignal, install.sh --start) and
started again from the new binary.  The job is not restarted (one attempt,
same runner) and its log is byte-exact on the node and at the workspace."""
import json
import os
import re
import shutil
import signal

from harness.agent import Agent
from harness.common import BUILD_DIR, Proc, binary, run, tmpdir, wait_until


class InstalledAgent(Agent):
    """An agent started from an installed prefix (PREFIX/bin)."""

    def __init__(self, workspace, prefix, **kw):
        super().__init__(workspace, **kw)
        self.exe = os.path.join(prefix, "bin", "tether-agent")

    def start(self):
        argv = [self.exe, "run"]
        if not os.path.exists(os.path.join(self.state_dir, "credentials")):
            self.token = self.token or self.ws.token()
            argv += ["--token", self.token]
        self.proc = Proc(argv, self.log_path, env=self.env())
        wait_until(self._registered, 20, what="the agent to register")
        return self


def install_binaries(prefix, marker):
    """What install.sh does: a new file per binary (running ones keep the
    old inode).  marker makes this build's files differ from the last."""
    os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
    for name, sub in (("tether-agent", "agent"), ("tether-runner", "runner"),
                      ("tether-runner-full", "runner")):
        staged = os.path.join(prefix, name + ".new")
        shutil.copy(os.path.join(BUILD_DIR, sub, name), staged)
        with open(staged, "ab") as f:
            f.write(marker)
        run(["install", "-m", "0755", staged, os.path.join(prefix, "bin", name)])
        os.unlink(staged)


def test_upgrade_during_a_running_job(workspace):
    binary("tether-agent")
    prefix = tmpdir("tether-prefix-")
    install_binaries(prefix, b"\0version-1")
    ag = InstalledAgent(workspace, prefix).start()
    try:
        # numbered lines until the test lets the job end
        script = ("i=0; while [ ! -e /tether/work/go ]; do i=$((i+1)); "
                  "echo \"line $i\"; sleep 0.01; done; echo end")
        job = workspace.submit(name="upgrade", command=["sh", "-c", script])
        adir = ag.attempt_dir(job)
        wait_until(lambda: os.path.exists(os.path.join(adir, "log")) and
                   os.path.getsize(os.path.join(adir, "log")) > 200, 60,
                   what="the job to write output")
        with open(os.path.join(adir, "state.json")) as f:
            runner_pid = json.load(f)["runner_pid"]
        old_pid = ag.pid

        install_binaries(prefix, b"\0version-2")
        ag.signal(signal.SIGQUIT)
        assert ag.wait_exit(30) == 0, ag.output()[-3000:]
        os.kill(runner_pid, 0)  # the runner (and its job) kept running
        size_while_down = os.path.getsize(os.path.join(adir, "log"))
        ag.start()
        assert ag.pid != old_pid
        exe = os.readlink(f"/proc/{ag.pid}/exe")
        assert exe == ag.exe, exe  # the new file, not "(deleted)"
        # the job went on writing while the agent was away, and after
        wait_until(lambda: os.path.getsize(os.path.join(adir, "log")) >
                   size_while_down + 200, 30, what="more output after the upgrade")
        open(os.path.join(adir, "work", "go"), "w").close()
        j = ag.wait_job(job, "succeeded", timeout=60)
    finally:
        if ag.alive():
            ag.kill9()

    assert len(j["attempts"]) == 1, j  # not restarted
    with open(os.path.join(adir, "state.json")) as f:
        assert json.load(f)["runner_pid"] == runner_pid
    with open(os.path.join(adir, "log"), "rb") as f:
        node_log = f.read()
    assert ag.ws_log(job) == node_log  # byte-exact at the workspace
    # the job's own lines: 1..K in order, none lost or doubled, then "end"
    lines = [ln for ln in node_log.decode().splitlines()
             if not ln.startswith("[")]
    assert lines[-1] == "end", lines[-3:]
    numbers = [int(m.group(1)) for m in map(re.compile(r"line (\d+)$").match, lines[:-1])]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) > 20
