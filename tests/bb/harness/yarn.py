"""A YARN on this machine for the tests: Hadoop's MiniYARNCluster.

install/deps.sh puts hadoop-minicluster 3.3.4 and its dependencies (from
Maven Central, tests/bb/harness/yarn/pom.xml) into YARN_DIR/lib; the harness
compiles harness/yarn/MiniYarn.java against them, starts it (one
ResourceManager and one NodeManager, the local filesystem as
fs.defaultFS) and gets the client configuration it writes, which
spark-submit --master yarn reads through HADOOP_CONF_DIR.  The
configuration directory and a staging directory (spark.yarn.stagingDir,
where the driver uploads Spark's jars for the NodeManager to localise) live
under /var/tmp, outside the sandbox's private /tmp, so that both the
sandboxed driver and the NodeManager see them at the same path.

There is no Hadoop install here, so no `yarn` command: harness/yarn/yarn is
one for this cluster.  A real Hadoop's bin/yarn is a script that runs a CLI
class from its jars with HADOOP_CONF_DIR on the classpath (ApplicationCLI
for `yarn application`, NodeCLI for `yarn node`); the wrapper runs the same
classes from YARN_DIR/lib.  The agent is given it as yarn_command.
"""
import glob
import os
import shutil
import subprocess

from harness.common import Proc, tmpdir, wait_until

YARN_DIR = os.environ.get("TETHER_YARN_DIR", "/opt/tether-yarn")
HERE = os.path.join(os.path.dirname(__file__), "yarn")
YARN_COMMAND = os.path.join(HERE, "yarn")
# Java 17 and Hadoop 3.3's Guice/cglib: open what they reflect into.
OPENS = ["--add-opens=java.base/%s=ALL-UNNAMED" % p for p in (
    "java.lang", "java.util", "java.lang.reflect", "java.io", "java.net",
    "sun.nio.ch")]


def missing():
    """Why a YARN cannot run here ("" when it can)."""
    if not glob.glob(os.path.join(YARN_DIR, "lib", "hadoop-minicluster-*.jar")):
        return "no Hadoop mini cluster in %s/lib: run install/deps.sh" % YARN_DIR
    if shutil.which("javac") is None:
        return "no javac: run install/deps.sh (openjdk-17-jdk-headless)"
    return ""


class YarnCluster:
    def __init__(self):
        self.dir = tmpdir("tether-yarn-", base="/var/tmp")
        os.chmod(self.dir, 0o755)
        self.conf_dir = os.path.join(self.dir, "conf")
        self.staging = os.path.join(self.dir, "staging")
        os.makedirs(self.conf_dir, 0o755)
        os.makedirs(self.staging)
        os.chmod(self.staging, 0o1777)
        self.proc = None

    def start(self, timeout=180):
        classes = os.path.join(self.dir, "classes")
        os.makedirs(classes)
        cp = os.path.join(YARN_DIR, "lib", "*")
        subprocess.run(["javac", "-cp", cp, "-d", classes,
                        os.path.join(HERE, "MiniYarn.java")], check=True,
                       capture_output=True, timeout=120)
        site = os.path.join(self.conf_dir, "yarn-site.xml")
        self.proc = Proc(["java", "-Xmx768m"] + OPENS +
                         ["-cp", cp + ":" + classes, "MiniYarn", site],
                         os.path.join(self.dir, "yarn.log"),
                         # MiniYARNCluster keeps its state in
                         # ./target/test/data: in the temporary dir
                         cwd=self.dir)
        wait_until(lambda: "READY" in self.proc.output() or
                   not self.proc.alive(), timeout, interval=0.5,
                   what="the mini YARN to start")
        assert self.proc.alive(), self.proc.output()[-4000:]
        os.chmod(site, 0o644)
        return self

    def cli(self, *args, timeout=60):
        """Run the yarn wrapper against this cluster; its stdout."""
        env = dict(os.environ, HADOOP_CONF_DIR=self.conf_dir)
        r = subprocess.run([YARN_COMMAND] + list(args), env=env,
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, (args, r.stdout, r.stderr[-3000:])
        return r.stdout

    def app_state(self, app):
        """The application's State (`yarn application -status`)."""
        for line in self.cli("application", "-status", app).splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "State":
                return v.strip()
        return None

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=20)
            self.proc = None
