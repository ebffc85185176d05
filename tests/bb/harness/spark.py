"""A Spark standalone cluster on this machine, started by the tests.

Spark comes from the `pyspark` package that install/deps.sh installs into its
own venv (SPARK_VENV, default /opt/tether-spark): its pyspark/ directory is a
whole Spark distribution (bin/spark-submit, bin/spark-class, jars/).  The
cluster is one master and two workers, each its own JVM, bound to 127.0.0.1
on free ports, with logs, work and local dirs in a fresh temporary directory,
so two test runs never share a port or a file.  Each worker offers one core
and a little memory (the machine is small and shared): the cluster has two
cores, which tests of refusal rely on.
"""
import glob
import json
import os
import shutil
import urllib.parse
import urllib.request

from harness.common import Proc, free_port, tmpdir, wait_until  # noqa: F401

KILL_GRACE = 2  # the harness agent's kill_grace (harness/agent.py FAST)
# A PySpark application whose two tasks each sleep argv[1] seconds on the
# executors (the control tests cancel, time out and kill it mid-run).
SLOW = b"""import sys
from pyspark.sql import SparkSession

secs = float(sys.argv[1])
sc = SparkSession.builder.getOrCreate().sparkContext
sc.setLogLevel("WARN")
print("application", sc.applicationId, flush=True)


def work(it):
    import time
    time.sleep(secs)
    return [sum(it)]


print("sums", sc.parallelize(range(10), 2).mapPartitions(work).collect(),
      flush=True)
"""

SPARK_VENV = os.environ.get("TETHER_SPARK_VENV", "/opt/tether-spark")
WORKER_CORES = 1
WORKER_MEMORY = "1g"
# The smallest executor a worker above can hold (Spark refuses a JVM heap
# under 450 MiB * 1.5 as "System memory ... must be at least ...").
EXECUTOR_MEMORY = "600m"


def spark_home():
    """The Spark distribution inside the venv's pyspark package, or None."""
    hits = glob.glob(os.path.join(SPARK_VENV, "lib", "python3*",
                                  "site-packages", "pyspark"))
    for h in hits:
        if os.access(os.path.join(h, "bin", "spark-submit"), os.X_OK):
            return h
    return None


def missing():
    """Why a Spark cluster cannot run here ("" when it can)."""
    if spark_home() is None:
        return ("no Spark at %s (pyspark venv): run install/deps.sh"
                % SPARK_VENV)
    if shutil.which("java") is None:
        return "no java on PATH: run install/deps.sh (openjdk-17-jre-headless)"
    return ""


def base_env(home, logs):
    """Environment for Spark's scripts (daemons and spark-submit)."""
    return {"SPARK_HOME": home, "SPARK_LOG_DIR": logs,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "256m", "SPARK_NO_DAEMONIZE": "1"}


class SparkCluster:
    """A master and two workers; stop() ends them all."""

    def __init__(self, workers=2):
        self.home = spark_home()
        self.dir = tmpdir("tether-spark-")
        self.port = free_port()
        self.ui_port = free_port()
        self.nworkers = workers
        self.procs = []
        self.worker_dirs = []
        self.env = base_env(self.home, self.path("logs"))
        self.master = "spark://127.0.0.1:%d" % self.port
        self.ui = "http://127.0.0.1:%d" % self.ui_port

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _daemon(self, name, cls, *args):
        env = dict(self.env)
        env["SPARK_LOCAL_DIRS"] = self.path(name, "local")
        os.makedirs(env["SPARK_LOCAL_DIRS"], exist_ok=True)
        argv = [os.path.join(self.home, "bin", "spark-class"), cls] + list(args)
        p = Proc(argv, self.path(name + ".log"), env=env)
        self.procs.append(p)
        return p

    def start(self, timeout=120):
        os.makedirs(self.path("logs"), exist_ok=True)
        self._daemon("master", "org.apache.spark.deploy.master.Master",
                     "--host", "127.0.0.1", "--port", str(self.port),
                     "--webui-port", str(self.ui_port))
        wait_until(lambda: self.status(), timeout, interval=0.5,
                   what="the Spark master's JSON status at " + self.ui)
        for i in range(self.nworkers):
            work = self.path("worker%d" % i, "work")
            os.makedirs(work, exist_ok=True)
            self.worker_dirs.append(work)
            self._daemon("worker%d" % i,
                         "org.apache.spark.deploy.worker.Worker",
                         "--host", "127.0.0.1", "--port", str(free_port()),
                         "--webui-port", str(free_port()),
                         "--cores", str(WORKER_CORES),
                         "--memory", WORKER_MEMORY, "--work-dir", work,
                         self.master)
        wait_until(lambda: len(self.status().get("workers", [])) ==
                   self.nworkers and self.status().get("aliveworkers") ==
                   self.nworkers, timeout, interval=0.5,
                   what="%d Spark workers to register" % self.nworkers)
        return self

    def status(self):
        """The master's /json/ document (workers, active and completed
        applications)."""
        with urllib.request.urlopen(self.ui + "/json/", timeout=5) as r:
            return json.load(r)

    def apps(self):
        """Every application the master knows: {id: state}."""
        st = self.status()
        return {a["id"]: a["state"]
                for a in st.get("activeapps", []) + st.get("completedapps", [])}

    def kill_all(self):
        """Kill every application still running (a failed test must not hold
        the next one's cores)."""
        try:
            active = self.status().get("activeapps", [])
        except OSError:
            return
        for a in active:
            data = urllib.parse.urlencode({"id": a["id"],
                                           "terminate": "true"}).encode()
            try:
                urllib.request.urlopen(self.ui + "/app/kill/", data,
                                       timeout=5).read()
            except OSError:
                pass

    def logs(self):
        out = []
        for p in self.procs:
            out.append("== %s\n%s" % (p.log_path, p.output()[-4000:]))
        return "\n".join(out)

    def stop(self):
        for p in reversed(self.procs):
            p.stop(timeout=10)
        self.procs = []
