"""tether-agent for tests: a state dir in a tmp directory, configured to
attach to a harness Workspace over TLS on loopback, with fast durations.

    ag = Agent(workspace, max_jobs=2)      # writes agent.conf, not started
    ag.start()                              # registers on first start
    job = workspace.submit(name="j", command=["echo", "hi"])
    ag.wait_job(job, "succeeded")
    ag.kill9(); ag.start()                  # same state dir: recovery
    ag.stop()                               # SIGTERM: drain
"""
import atexit
import glob
import json
import os
import shutil
import tempfile
import re
import signal
import sqlite3
import subprocess
import time

from harness.common import Proc, binary, run, tmpdir, wait_until

FAST = {"heartbeat_interval": "1s", "backoff_min": "200ms",
        "backoff_max": "2s", "connect_timeout": "2s", "kill_grace": "2s",
        "runner_start_timeout": "10s", "log_level": "debug"}
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "oom", "lost",
            "preempted", "hung", "source_failed", "env_failed",
            "launch_failed", "outputs_failed", "disk_limit"}


_state_dirs = []


def stamps(data):
    """The `date +%s.%N` values printed in a log (other tokens ignored)."""
    out = []
    for tok in data.split():
        try:
            v = float(tok)
        except ValueError:
            continue
        if v > 1e9:
            out.append(v)
    return out


def db_integrity(state_dir):
    """PRAGMA integrity_check of the agent database in state_dir ("ok")."""
    c = sqlite3.connect(os.path.join(state_dir, "agent.db"), timeout=10)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def state_dir_new():
    d = tempfile.mkdtemp(prefix="tether-agent-state-", dir="/var/tmp")
    os.chmod(d, 0o700)
    _state_dirs.append(d)
    # the slurm launcher's default staging root beside it (docs/slurm.md)
    _state_dirs.append(d + "-slurm")
    return d


@atexit.register
def _cleanup():
    if os.environ.get("TETHER_KEEP_TMP") == "1":
        return
    for d in _state_dirs:
        shutil.rmtree(d, ignore_errors=True)


# Every Agent made whose cgroup parent may still exist (conftest.py removes
# those of agents no longer running after each test).
_made = []


def remove_dead_cgroup_parents(end=False):
    """rmdir the cgroup parents (tether-test-<name>, in every hierarchy) of
    the agents made here that no longer run, deepest first.  A cgroup with
    a process in it (a runner that outlived its agent) cannot be removed
    and stays.  end: the session is over, kill the agents tests left
    running first.  Without this every test's agent left its parent behind: a
    machine that ran the suites for a day held thousands per controller,
    and cgroup operations slowed (docs/performance.md, F10)."""
    for ag in list(_made):
        try:
            if end and ag.alive():
                ag.kill9()  # the run is over: one a test left running
                ag.proc.p.wait(10)
            if ag.alive():
                continue
        except Exception:  # noqa: BLE001 (hygiene never fails a run)
            continue
        name = ag.settings.get("cgroup_parent", "")
        left = []
        if name.startswith("tether-test-"):
            for top in glob.glob("/sys/fs/cgroup/" + name) + \
                    glob.glob("/sys/fs/cgroup/*/" + name):
                for d, _, _ in os.walk(top, topdown=False):
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass
                if os.path.isdir(top):
                    left.append(top)
        # a job's processes may still be exiting: try again after the
        # next tests, a few times
        ag._cgroup_tries = getattr(ag, "_cgroup_tries", 0) + 1
        if not left or ag._cgroup_tries >= 10:
            _made.remove(ag)


class Agent:
    def __init__(self, workspace=None, state_dir=None, name=None, token=None,
                 **settings):
        self.ws = workspace
        self.base = tmpdir("tether-agent-")
        # Outside /tmp: the sandbox gives jobs a private /tmp.
        self.state_dir = state_dir or state_dir_new()
        self.name = name or "node-" + os.path.basename(self.base)[-6:]
        self.settings = dict(FAST)
        # Agents of parallel tests must not share job cgroups (they are
        # named <parent>/<job>_<attempt>).
        self.settings["cgroup_parent"] = "tether-test-" + self.name
        self.settings.update({k: str(v) for k, v in settings.items()})
        self.conf = os.path.join(self.base, "agent.conf")
        self.log_path = os.path.join(self.base, "agent.log")
        self.proc = None
        self.token = token
        self.write_conf()
        _made.append(self)

    def write_conf(self):
        lines = [f"state_dir = {self.state_dir}", f"name = {self.name}"]
        if self.ws is not None:
            lines += [f"workspace = {self.ws.url}",
                      f"ca_file = {self.ws.ca_file}"]
        for k, v in self.settings.items():
            lines.append(f"{k} = {v}")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TETHER_") or k in ("TETHER_BUILD_DIR",
                                                      "TETHER_SOURCE_DIR")}
        env.update({"TETHER_CONFIG": self.conf})
        return env

    def cmd(self, *args, check=True, timeout=60):
        """Run a local command (status, jobs, submit...) on this state dir."""
        r = subprocess.run([binary("tether-agent"), *args], capture_output=True,
                           text=True, timeout=timeout, env=self.env())
        if check and r.returncode != 0:
            raise AssertionError(f"tether-agent {args} exited {r.returncode}:\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def start(self, *extra, wait_registered=True):
        self.starts = self.output().count("started: state")
        # exe: another tether-agent executable (a wrapper that runs it in
        # a network namespace: harness/netcluster.py)
        argv = [getattr(self, "exe", None) or binary("tether-agent"), *extra]
        if self.ws is not None and not os.path.exists(
                os.path.join(self.state_dir, "credentials")) and \
                "--token" not in extra:
            self.token = self.token or self.ws.token()
            argv += ["--token", self.token]
        full = dict(self.env())
        self.proc = Proc(argv, self.log_path, env=full)
        # Proc merges os.environ first; drop TETHER_* the test runner has.
        if self.ws is not None and wait_registered:
            wait_until(lambda: self._registered(), 20,
                       what="the agent to register")
        elif self.ws is not None:
            # The caller expects trouble (e.g. a refused registration):
            # wait until it started, or already stopped.
            wait_until(lambda: not self.proc.alive() or self.output().count(
                "started: state") > self.starts, 20, what="the agent to start")
        else:
            wait_until(lambda: self._started(), 20,
                       what="the agent to start")
        return self

    def _started(self):
        if not self.proc.alive():
            raise AssertionError("tether-agent exited:\n" + self.output())
        return self.output().count("started: state") > self.starts

    def _registered(self):
        if not self.proc.alive():
            raise AssertionError("tether-agent exited:\n" + self.output())
        return os.path.exists(os.path.join(self.state_dir, "credentials"))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def kill9(self):
        self.proc.kill9()

    def signal(self, sig):
        self.proc.signal(sig)

    def stop(self, timeout=30):
        """SIGTERM (drain) and wait; returns the exit status."""
        if self.proc is None:
            return None
        return self.proc.stop(timeout)

    def wait_exit(self, timeout=30):
        self.proc.p.wait(timeout)
        return self.proc.p.returncode

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    # --- the workspace's view -------------------------------------------
    def job(self, job_id):
        return self.ws.job(job_id)

    def wait_job(self, job_id, state=None, timeout=30):
        """Wait until the job is terminal (or in `state`); returns it."""
        def done():
            j = self.ws.job(job_id)
            if state is not None:
                if j["state"] == state:
                    return j
                if j["state"] in TERMINAL and state in TERMINAL:
                    raise AssertionError(f"job {job_id} ended {j['state']}, "
                                         f"expected {state}: {j}\n"
                                         + self.output()[-4000:])
                return None
            return j if j["state"] in TERMINAL else None
        try:
            return wait_until(done, timeout, interval=0.05,
                              what=f"job {job_id} to be {state or 'terminal'}")
        except TimeoutError as exc:  # keep what explains it (a rare flake)
            raise TimeoutError(f"{exc}\n{self._why_not(job_id)}") from None

    def _why_not(self, job_id):
        """The job as the workspace has it and the tails of the agent's and
        its runner's logs, for a wait that timed out."""
        try:
            j = self.ws.job(job_id)
            att = (j.get("attempts") or [{}])[-1]
            parts = [f"job {job_id}: {j['state']}, attempt "
                     f"{att.get('attempt')} {att.get('state')}: "
                     f"{att.get('message')}"]
        except Exception as exc:
            parts = [f"job {job_id}: not read ({exc})"]
            att = {}
        parts.append("--- agent log (tail)\n" + self.output()[-6000:])
        rlog = os.path.join(self.attempt_dir(job_id, att.get("attempt") or 1),
                            "runner.log")
        try:
            with open(rlog, "rb") as f:
                parts.append("--- runner.log (tail)\n" +
                             f.read()[-3000:].decode(errors="replace"))
        except OSError:
            pass
        return "\n".join(parts)

    def ws_log(self, job_id, attempt=None):
        q = f"?attempt={attempt}" if attempt else ""
        out = b""
        while True:
            sep = "&" if q else "?"
            st, h, body = self.ws.api(
                "GET", f"/api/v1/jobs/{job_id}/log{q}{sep}offset={len(out)}")
            assert st == 200, body
            if not body:
                return out
            out += body

    # --- the node's view -------------------------------------------------
    def db(self):
        return sqlite3.connect(os.path.join(self.state_dir, "agent.db"),
                               timeout=10)

    def attempt_dir(self, job, attempt=1):
        return os.path.join(self.state_dir, "jobs", str(job), str(attempt))

    def local_state(self, job, attempt=1):
        with self.db() as c:
            row = c.execute("SELECT state FROM attempts WHERE job=? AND "
                            "attempt=?", (str(job), attempt)).fetchone()
        return row[0] if row else None

    def retry_delays(self):
        """The 'retry in N ms' delays the agent logged, in order."""
        return [int(m) for m in re.findall(r"retry in (\d+) ms", self.output())]
