"""A single-node Slurm cluster on this machine, started by the tests.

munged (own key, own socket), slurmctld and slurmd run from a fresh temporary
directory with a generated slurm.conf on free ports, so several test runs (or
a Slurm left behind by an earlier one) never clash: every path, port and even
the job id range (FirstJobId) is its own.  No slurmdbd: the test cluster has
no accounting, like many small clusters.

Memory limits: task/cgroup with ConstrainRAMSpace (cgroup v1 memory
controller) when the memory controller can be used here, so that a job over
its --mem ends OUT_OF_MEMORY; otherwise task/none and `oom_supported` is
False with the reason in `oom_why`.
"""
import os
import random
import shutil
import socket
import subprocess
import time

from harness import common
from harness.common import Proc, free_port, run, tmpdir, wait_until

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol",
            "scancel", "sinfo")
MEMCG = "/sys/fs/cgroup/memory"
# Character devices that stand in for GPUs in gres.conf (Slurm only needs a
# device node per GPU; ConstrainDevices=no, so the job's access is unchanged).
GPU_FILES = ("/dev/null", "/dev/zero")


def missing_binaries():
    """Names of the Slurm/munge programs not installed (install/deps.sh)."""
    return [b for b in BINARIES
            if shutil.which(b) is None and not os.path.exists("/usr/sbin/" + b)]


def _memtotal_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def _memcg_usable():
    """(True, "") when Slurm's cgroup v1 memory limit can work here."""
    if os.geteuid() != 0:
        return False, "not root: slurmd cannot create memory cgroups"
    if not os.path.exists(os.path.join(MEMCG, "memory.limit_in_bytes")):
        return False, ("no cgroup v1 memory controller at " + MEMCG +
                       " (cgroup v2 only: the harness would need "
                       "CgroupPlugin=cgroup/v2 with a delegated subtree)")
    probe = os.path.join(MEMCG, "tether-slurm-probe-%d" % os.getpid())
    try:
        os.mkdir(probe)
        with open(os.path.join(probe, "memory.limit_in_bytes"), "w") as f:
            f.write("67108864")
        os.rmdir(probe)
    except OSError as exc:
        return False, "cannot create a memory cgroup under %s: %s" % (MEMCG, exc)
    return True, ""


class SlurmCluster:
    """munged + slurmctld + slurmd; `env` holds SLURM_CONF for clients."""

    def __init__(self):
        self.base = tmpdir("tether-slurm-")
        os.chmod(self.base, 0o755)
        self.node = socket.gethostname().split(".")[0]
        # More CPUs than the machine has (config_overrides), so that many
        # short test jobs run side by side instead of queueing two at a time.
        self.cpus = max(8, os.cpu_count() or 1)
        self.real_memory = int(_memtotal_mb() * 0.85)
        self.first_job_id = random.randint(100000, 60000000)
        self.oom_supported, self.oom_why = _memcg_usable()
        self.conf = os.path.join(self.base, "slurm.conf")
        self.env = {"SLURM_CONF": self.conf}
        self.procs = []

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    def start(self, timeout=60):
        try:
            self._start_munge()
            self._write_conf()
            self._start_daemons()
            self.wait_idle(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _start_munge(self):
        d = self.path("munge")
        os.mkdir(d, 0o755)
        key = os.path.join(d, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = os.path.join(d, "munge.socket")
        self.procs.append(Proc(
            ["munged", "--foreground", "--force", "--key-file=" + key,
             "--socket=" + self.munge_socket,
             "--pid-file=" + os.path.join(d, "munged.pid"),
             "--seed-file=" + os.path.join(d, "munged.seed"),
             "--log-file=" + os.path.join(d, "munged.log")],
            os.path.join(d, "munged.out")))
        wait_until(lambda: os.path.exists(self.munge_socket), 10,
                   what="munged socket")

    def _write_conf(self):
        for sub in ("state", "spool", "log"):
            os.mkdir(self.path(sub), 0o755)
        self.ctld_port, self.slurmd_port = free_port(), free_port()
        task = "task/cgroup" if self.oom_supported else "task/none"
        lines = [
            "ClusterName=tether%d" % (self.first_job_id % 100000),
            "SlurmctldHost=%s(127.0.0.1)" % self.node,
            "SlurmUser=root", "SlurmdUser=root",
            "SlurmctldPort=%d" % self.ctld_port,
            "SlurmdPort=%d" % self.slurmd_port,
            "AuthType=auth/munge", "CredType=cred/munge",
            "AuthInfo=socket=%s" % self.munge_socket,
            "StateSaveLocation=%s" % self.path("state"),
            "SlurmdSpoolDir=%s" % self.path("spool"),
            "SlurmctldPidFile=%s" % self.path("slurmctld.pid"),
            "SlurmdPidFile=%s" % self.path("slurmd.pid"),
            "SlurmctldLogFile=%s" % self.path("log", "slurmctld.log"),
            "SlurmdLogFile=%s" % self.path("log", "slurmd.log"),
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=%s" % task,
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=1",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,sched_min_interval=100000",
            "MpiDefault=none", "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "SlurmctldTimeout=30", "SlurmdTimeout=60", "InactiveLimit=0",
            "MinJobAge=300", "KillWait=2", "MessageTimeout=20",
            "FirstJobId=%d" % self.first_job_id,
            "DefMemPerNode=256", "MaxJobCount=20000",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            # Two stand-in GPUs (gres.conf) so that --gres=gpu:N is
            # scheduled and counted; nothing is bound or isolated.
            "GresTypes=gpu",
            "NodeName=%s NodeAddr=127.0.0.1 CPUs=%d RealMemory=%d Gres=gpu:%d "
            "State=UNKNOWN" % (self.node, self.cpus, self.real_memory,
                               len(GPU_FILES)),
            "PartitionName=debug Nodes=%s Default=YES MaxTime=INFINITE "
            "State=UP OverSubscribe=NO" % self.node,
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.path("gres.conf"), "w") as f:
            for dev in GPU_FILES:
                f.write("NodeName=%s Name=gpu File=%s\n" % (self.node, dev))
        with open(self.path("cgroup.conf"), "w") as f:
            f.write("CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n"
                    "ConstrainRAMSpace=yes\nConstrainSwapSpace=no\n"
                    "ConstrainCores=no\nConstrainDevices=no\n")

    def _start_daemons(self):
        env = dict(self.env)
        self.procs.append(Proc(["slurmctld", "-D", "-i", "-f", self.conf],
                               self.path("log", "slurmctld.out"), env=env))
        self.procs.append(Proc(["slurmd", "-D", "-f", self.conf],
                               self.path("log", "slurmd.out"), env=env))

    def cmd(self, *argv, check=True, timeout=30):
        """Run a Slurm client command against this cluster."""
        env = dict(os.environ)
        env.update(self.env)
        return run(list(argv), check=check, timeout=timeout, env=env)

    def node_state(self):
        """The node's state as scontrol has it, lower case with its flags:
        "idle", "mixed", "allocated", "down+not_responding", ..."""
        r = self.cmd("scontrol", "show", "node", "-o", self.node, check=False)
        for tok in r.stdout.split():
            if tok.startswith("State="):
                return tok[len("State="):].lower()
        return ""

    def wait_idle(self, timeout=60):
        def idle():
            for p in self.procs:
                if not p.alive():
                    raise RuntimeError("%s exited:\n%s" % (p.argv[0], p.output()))
            return self.node_state() == "idle"
        try:
            wait_until(idle, timeout, interval=0.2, what="slurm node idle")
        except Exception as exc:
            raise RuntimeError("%s\n%s" % (exc, self.logs())) from None

    def logs(self):
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            p = self.path("log", name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out.append("== %s\n%s" % (name, "".join(f.readlines()[-30:])))
        return "\n".join(out)

    def queue(self):
        """Job ids Slurm still lists in squeue (pending or running)."""
        r = self.cmd("squeue", "-h", "-o", "%i")
        return set(r.stdout.split())

    def job(self, job_id):
        """`scontrol show job` fields as a dict ({} when Slurm forgot it)."""
        r = self.cmd("scontrol", "show", "job", "-o", str(job_id), check=False)
        if r.returncode != 0:
            return {}
        fields = {}
        for tok in r.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                fields.setdefault(k, v)
        return fields

    def restart_controller(self, down_seconds=0.0):
        """Stop slurmctld (SIGTERM: it saves its state), wait, start it again
        on the same state; returns when the node answers again."""
        ctld = [p for p in self.procs if p.argv[0] == "slurmctld"][0]
        ctld.stop(timeout=20)
        time.sleep(down_seconds)  # an outage of a given length, not a sync
        self.procs[self.procs.index(ctld)] = Proc(
            ["slurmctld", "-D", "-f", self.conf],
            self.path("log", "slurmctld.out"), env=dict(self.env))
        wait_until(lambda: self.node_state() in ("idle", "mixed", "allocated"), 60,
                   interval=0.2, what="slurmctld back")

    def set_node(self, state, reason="tether test"):
        """scontrol update of this node's state (down, resume, drain)."""
        argv = ["scontrol", "update", "nodename=" + self.node, "state=" + state]
        if state.lower() != "resume":
            argv.append("reason=" + reason)
        # "resume" of a node that is already back is refused: not an error.
        self.cmd(*argv, check=state.lower() != "resume")

    def cancel_all(self):
        """scancel every job this cluster still has queued or running."""
        ids = sorted(self.queue())
        if ids:
            self.cmd("scancel", *ids, check=False)
            wait_until(lambda: not self.queue(), 30, interval=0.1,
                       what="the queue to empty")

    def healthy(self):
        return all(p.alive() for p in self.procs) and \
            self.node_state() in ("idle", "mixed", "allocated")

    def stop(self):
        for p in reversed(self.procs):
            p.stop(timeout=10)
        self.procs = []


def make_attempt(state_dir, job, spec, attempt=1, **settings):
    """An attempt directory jobs/<job>/<attempt> with a spec.json whose
    runner.launcher is "slurm" (docs/state-dir.md); returns its path."""
    import json
    d = os.path.join(state_dir, "jobs", str(job), str(attempt))
    os.makedirs(d, 0o700)
    # the launcher's default staging root beside the state dir: removed at
    # exit with the state dir (the runner removes what it put there)
    if state_dir.rstrip("/") + "-slurm" not in common._tmpdirs:
        common._tmpdirs.append(state_dir.rstrip("/") + "-slurm")
    spec = dict(spec)
    spec.setdefault("name", "slurm-test-%s" % job)
    spec.setdefault("launcher", "slurm")
    runner = {"state_dir": state_dir, "launcher": "slurm", "kill_grace": 2,
              "slurm": {"partition": None, "shared_dir": None, "poll_ms": 300}}
    slurm_settings = settings.pop("slurm", {})
    runner["slurm"].update(slurm_settings)
    runner.update(settings)
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump({"job": str(job), "attempt": attempt, "spec": spec,
                   "runner": runner}, f)
    return d


def stage_dir(attempt_dir, shared_dir=None):
    """Where the slurm launcher stages an attempt for Slurm (the Slurm files,
    work/, outputs/, checkpoints/): <shared_dir>/<job>/<attempt>, by default
    <state_dir>-slurm/<job>/<attempt> (docs/slurm.md, "Staging directory").
    The job runs there as the job user; it is removed when the attempt ends."""
    attempt = os.path.basename(attempt_dir)
    job = os.path.basename(os.path.dirname(attempt_dir))
    state = os.path.dirname(os.path.dirname(os.path.dirname(attempt_dir)))
    return os.path.join(shared_dir or state + "-slurm", job, attempt)


def work_dir(attempt_dir, shared_dir=None):
    """The job's working directory under Slurm (its staging work/)."""
    return os.path.join(stage_dir(attempt_dir, shared_dir), "work")


def read_json(path):
    import json
    with open(path) as f:
        return json.load(f)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def job_log(attempt_dir):
    """The attempt log without the runner's own "[...]" lines."""
    data = read_bytes(os.path.join(attempt_dir, "log"))
    return b"".join(l for l in data.splitlines(keepends=True)
                    if not (l.startswith(b"[tether]") or l.startswith(b"[slurm]")
                            or l.startswith(b"[source]") or l.startswith(b"[env]")))


def start_runner(cluster, attempt_dir):
    """`tether-runner run DIR` in the foreground, talking to this cluster."""
    from harness.common import binary
    return Proc([binary("tether-runner"), "run", attempt_dir],
                os.path.join(os.path.dirname(attempt_dir),
                             "runner-%s.out" % os.path.basename(attempt_dir)),
                env=cluster.env)


def wait_result(attempt_dir, timeout=60, runner=None):
    """result.json once the runner wrote it (the runner's output on timeout)."""
    path = os.path.join(attempt_dir, "result.json")
    try:
        wait_until(lambda: os.path.exists(path), timeout, interval=0.1,
                   what="result.json in " + attempt_dir)
    except TimeoutError as exc:
        extra = runner.output() if runner is not None else ""
        raise AssertionError("%s\nrunner output:\n%s" % (exc, extra)) from None
    return read_json(path)


def slurm_job_id(attempt_dir, timeout=30):
    """The Slurm job id the runner stored in state.json (launcher_ref)."""
    path = os.path.join(attempt_dir, "state.json")

    def ref():
        return read_json(path).get("launcher_ref") or None
    return wait_until(ref, timeout, interval=0.05, what="launcher_ref")


def job_output(attempt_dir, job_id):
    """Bytes the job wrote, cut from the log between the runner's
    "[slurm] submitted batch job N" line and its "[slurm] batch job N ended"
    line."""
    data = read_bytes(os.path.join(attempt_dir, "log"))
    start = b"[slurm] submitted batch job %s\n" % str(job_id).encode()
    end = b"[slurm] batch job %s ended" % str(job_id).encode()
    i = data.index(start) + len(start)
    j = data.rindex(end)
    return data[i:j]


def jobs_in_dir(cluster, work_dir):
    """Ids of every Slurm job (any state Slurm still remembers) whose working
    directory is work_dir: how many times an attempt was submitted."""
    r = cluster.cmd("squeue", "-h", "-t", "all", "-o", "%i %Z")
    return [l.split(" ", 1)[0] for l in r.stdout.splitlines()
            if l.split(" ", 1)[-1] == work_dir]
