"""Shared plumbing of the black-box harness: paths, ports, processes, waits."""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SOURCE_DIR = os.environ.get(
    "TETHER_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
BUILD_DIR = os.environ.get("TETHER_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
# Sanitizer builds: third-party leaks only (tests/lsan.supp); every process
# the harness starts inherits this.
os.environ.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(
    SOURCE_DIR, "tests", "lsan.supp"))
if "fast_unwind_on_malloc" not in os.environ.get("ASAN_OPTIONS", ""):
    os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [
        os.environ.get("ASAN_OPTIONS"), "fast_unwind_on_malloc=0"]))


def binary(name):
    """Path of a built binary: tether, tether-agent, tether-runner, tether-workspace."""
    sub = {"tether-agent": "agent", "tether-runner": "runner",
           "tether-workspace": "workspace/server", "tether": "cli"}[name]
    path = os.path.join(BUILD_DIR, sub, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not built: run tests/run.sh or cmake --build build")
    return path


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a truthy value; raise on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as exc:  # the service may not answer yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_exc})" if last_exc else ""))


def wait_port(port, host="127.0.0.1", timeout=10.0):
    def up():
        with socket.create_connection((host, port), timeout=0.5):
            return True
    return wait_until(up, timeout, what=f"{host}:{port} to accept connections")


_tmpdirs = []


def tmpdir(prefix="tether-test-", base=None):
    """A fresh directory removed at exit (kept when TETHER_KEEP_TMP=1);
    under base (default: $TMPDIR or /tmp)."""
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    _tmpdirs.append(d)
    return d


@atexit.register
def _cleanup_tmp():
    if os.environ.get("TETHER_KEEP_TMP") == "1":
        return
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


_procs = []


class Proc:
    """A child process with its output in a log file, killed at exit."""

    def __init__(self, argv, log_path, env=None, cwd=None, new_session=True):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                  start_new_session=new_session)
        self.pid = self.p.pid
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.p.wait()

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        if self.alive():
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


@atexit.register
def _cleanup_procs():
    for pr in reversed(_procs):
        try:
            if pr.alive():
                pr.p.kill()
                pr.p.wait(5)
        except Exception:
            pass


def run(argv, check=True, timeout=120, **kw):
    """subprocess.run with captured text output and a timeout."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}\nstdout: {r.stdout}\n"
                             f"stderr: {r.stderr}")
    return r
