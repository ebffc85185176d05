"""Helpers to run tether-runner directly on an attempt directory.

make_attempt() writes <state>/jobs/<job>/<attempt>/spec.json the way the
agent does (docs/state-dir.md); run_runner() runs `tether-runner run DIR`
in the foreground; start_runner() starts it as a child; start_detached()
double-forks it like the agent (its parent becomes init)."""
import atexit
import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from harness.common import Proc, binary, run, wait_until  # noqa: F401

JOB_USER = "tether-job"
_state_dirs = []


def ensure_job_user(name=JOB_USER):
    """Create the unprivileged job user if missing (install does it too)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", name])
        # 9: another test process created it meanwhile
        assert r.returncode in (0, 9), "useradd %s: %d" % (name, r.returncode)
    return pwd.getpwnam(name)


def state_dir():
    """A fresh state dir (0700, root's) outside /tmp, so that the sandbox's
    read-only view of the host would show it if it were not hidden."""
    d = tempfile.mkdtemp(prefix="tether-state-", dir="/var/tmp")
    os.chmod(d, 0o700)
    _state_dirs.append(d)
    return d


def cgroup_parent(state):
    """A cgroup parent per state dir, so that tests running at the same
    time (other engineers, other suites) never share a job's cgroup."""
    return "tether-test/" + os.path.basename(state)


@atexit.register
def _cleanup():
    for d in _state_dirs:
        for ctl in glob.glob("/sys/fs/cgroup/*/" + cgroup_parent(d)):
            try:
                os.rmdir(ctl)  # empty by now: the runner removed its group
            except OSError:
                pass
    if os.environ.get("TETHER_KEEP_TMP") == "1":
        return
    for d in _state_dirs:
        shutil.rmtree(d, ignore_errors=True)


def make_attempt(command, job="42", attempt=1, state=None, runner=None, **spec):
    """Attempt dir with spec.json; `spec` adds job-spec fields, `runner`
    overrides runner settings.  Returns the attempt directory."""
    ensure_job_user()
    state = state or state_dir()
    d = os.path.join(state, "jobs", str(job), str(attempt))
    os.makedirs(d, mode=0o700)
    full = {"name": "test", "command": list(command)}
    full.update(spec)
    settings = {"state_dir": state, "job_user": JOB_USER, "kill_grace": 2,
                "default_pids": 512, "cgroup_parent": cgroup_parent(state),
                "allowed_mounts": [], "env_dir": os.path.join(state, "envs"),
                "default_python": "/usr/bin/python3", "conda_tool": None,
                "max_log_bytes": 1 << 34, "launcher": "sandbox", "gpus": []}
    settings.update(runner or {})
    doc = {"job": str(job), "attempt": attempt, "spec": full, "runner": settings}
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump(doc, f)
    return d


def run_runner(d, timeout=120):
    """`tether-runner run d` in the foreground; returns CompletedProcess."""
    return subprocess.run([binary("tether-runner"), "run", d], capture_output=True,
                          text=True, timeout=timeout)


def start_runner(d):
    """The runner as a child Proc (its stderr in d/../runner-<attempt>.err)."""
    return Proc([binary("tether-runner"), "run", d],
                os.path.join(os.path.dirname(d), "runner.err"))


def start_detached(d):
    """Start the runner the way the agent does: fork, setsid, fork, exec;
    the intermediate child exits so the runner's parent is init.  Returns
    the pid of a stand-in 'agent' process (the first fork's parent is this
    helper: a sleeping python child) so a test can kill -9 it."""
    err = os.path.join(os.path.dirname(d), "runner.err")
    code = ("import os,sys,time\n"
            "pid=os.fork()\n"
            "if pid==0:\n"
            "    os.setsid()\n"
            "    if os.fork()==0:\n"
            "        fd=os.open(sys.argv[3],os.O_WRONLY|os.O_CREAT|os.O_APPEND)\n"
            "        os.dup2(fd,2); os.dup2(fd,1)\n"
            "        os.execv(sys.argv[1],[sys.argv[1],'run',sys.argv[2]])\n"
            "    os._exit(0)\n"
            "os.waitpid(pid,0)\n"
            "time.sleep(3600)\n")
    return subprocess.Popen(["/usr/bin/python3", "-c", code,
                             binary("tether-runner"), d, err],
                            stdin=subprocess.DEVNULL)


def path(d, name):
    return os.path.join(d, name)


def result(d):
    with open(path(d, "result.json")) as f:
        return json.load(f)


def events(d):
    with open(path(d, "events")) as f:
        return [json.loads(line) for line in f if line.strip()]


def log(d):
    with open(path(d, "log"), "rb") as f:
        return f.read()


def state(d):
    with open(path(d, "state.json")) as f:
        return json.load(f)


def wait_result(d, timeout=30):
    wait_until(lambda: os.path.exists(path(d, "result.json")), timeout,
               what="result.json")
    return result(d)


def wait_started(d, timeout=30):
    """Wait for the `started` event; returns its pid."""
    def started():
        if not os.path.exists(path(d, "events")):
            return None
        for ev in events(d):
            if ev["type"] == "started":
                return ev["pid"]
        return None
    return wait_until(started, timeout, what="the job to start")


def write_cancel(d, reason="cancelled", grace=None):
    doc = {"reason": reason}
    if grace is not None:
        doc["grace"] = grace
    tmp = path(d, ".cancel.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, path(d, "cancel"))


def write_lease(d, deadline_mono_ms):
    tmp = path(d, ".lease.tmp")
    with open(tmp, "w") as f:
        f.write(f"{int(deadline_mono_ms)} {int(time.time() * 1000)}\n")
    os.rename(tmp, path(d, "lease"))


def mono_ms():
    return time.clock_gettime(time.CLOCK_MONOTONIC) * 1000.0


def pids_alive(pids):
    """The subset of pids that still exist (zombies count as gone)."""
    alive = []
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(p)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return alive
