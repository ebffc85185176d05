"""Environment builds on a node run with the documented defaults (issue 18):
the env cache inside the 0700 state dir (`<state_dir>/envs`), the job user
`tether-job`.  A venv job whose requirements file names a wheel shipped in
its source (installed without an index) and one with an empty requirements
file succeed, also when the state dir lies under /tmp; a requirement whose
build code probes its surroundings sees the job's sandbox, not the host,
and leaves nothing behind, in the job's own build and in a look-ahead
build."""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from harness.agent import Agent
from harness.common import binary, run, tmpdir, wait_until

PY = "/usr/bin/python3"


@pytest.fixture(scope="module")
def wheel():
    """A tiny wheel built offline (no index)."""
    d = tmpdir("tether-wheel-")
    src = os.path.join(d, "src")
    os.makedirs(os.path.join(src, "tinypkg"))
    open(os.path.join(src, "tinypkg", "__init__.py"), "w").write(
        "VALUE = 41\n")
    open(os.path.join(src, "pyproject.toml"), "w").write(
        '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tinypkg"\nversion = "1.0"\n')
    run([PY, "-m", "pip", "wheel", "-q", "--no-index", "--no-deps",
         "--no-build-isolation", "-w", os.path.join(d, "wheels"), src])
    (name,) = os.listdir(os.path.join(d, "wheels"))
    return os.path.join(d, "wheels", name)


def _submit(ag, spec, tmp):
    path = os.path.join(tmp, "job-%s.json" % uuid.uuid4().hex[:8])
    with open(path, "w") as f:
        json.dump(spec, f)
    return ag.cmd("submit", path).stdout.strip()


def _wait_done(ag, job, timeout=180):
    wait_until(lambda: ag.local_state(job) == "done", timeout,
               what=f"job {job} to finish")
    return ag.cmd("logs", job).stdout


def _reason(ag, job):
    r = ag.cmd("status", job, "--json", check=False)
    try:
        return json.loads(r.stdout).get("reason")
    except ValueError:
        return r.stdout


def _wheel_source(tmp, wheel, reqs):
    src = os.path.join(tmp, "src-" + uuid.uuid4().hex[:8])
    os.makedirs(os.path.join(src, "wheels"))
    shutil.copy(wheel, os.path.join(src, "wheels"))
    with open(os.path.join(src, "requirements.txt"), "w") as f:
        f.write(reqs)
    return src


def _venv_job(src, extra_pip=()):
    return {"name": "reqs", "source": {"path": src},
            "environment": {"kind": "venv",
                            "requirements_file": "requirements.txt",
                            "pip_options": ["--no-index", *extra_pip]},
            "command": ["python", "-c",
                        "import sys; print('prefix', sys.prefix);"
                        " import tinypkg; print('value', tinypkg.VALUE)"]}


def _check_requirements_jobs(ag, tmp, wheel):
    name = os.path.basename(wheel)
    src = _wheel_source(tmp, wheel, f"./wheels/{name}\n")
    job = _submit(ag, _venv_job(src), tmp)
    log = _wait_done(ag, job)
    assert "value 41" in log, log
    assert f"prefix {ag.state_dir}/envs/" in log, log
    # an empty requirements file: a plain venv
    empty = _wheel_source(tmp, wheel, "")
    spec = _venv_job(empty)
    spec["command"] = ["python", "-c", "import sys; print('prefix', sys.prefix)"]
    job = _submit(ag, spec, tmp)
    log = _wait_done(ag, job)
    assert f"prefix {ag.state_dir}/envs/" in log, log


def test_requirements_file_with_default_env_dir(wheel, tmp_path):
    """The documented defaults: env_dir is <state_dir>/envs, inside the
    0700 state dir; pip must still find requirements.txt in the source."""
    ag = Agent(None)
    ag.start()
    try:
        _check_requirements_jobs(ag, str(tmp_path), wheel)
    finally:
        ag.stop()


def test_state_dir_under_tmp(wheel, tmp_path):
    """A state dir under /tmp (hidden by the sandbox's private /tmp): the
    build and the job still see the environment at its path."""
    state = tempfile.mkdtemp(prefix="tether-tmp-state-", dir="/tmp")
    os.chmod(state, 0o700)
    ag = Agent(None, state_dir=state)
    ag.start()
    try:
        _check_requirements_jobs(ag, str(tmp_path), wheel)
    finally:
        ag.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_env_dir_setting_under_tmp(wheel, tmp_path):
    """env_dir set to a directory under /tmp, outside the state dir."""
    envs = tempfile.mkdtemp(prefix="tether-tmp-envs-", dir="/tmp")
    ag = Agent(None, env_dir=envs)  # the setting under test
    ag.start()
    try:
        src = _wheel_source(str(tmp_path), wheel,
                            f"./wheels/{os.path.basename(wheel)}\n")
        job = _submit(ag, _venv_job(src), str(tmp_path))
        log = _wait_done(ag, job)
        assert "value 41" in log and f"prefix {envs}/" in log, log
        assert len(json.loads(ag.cmd("envs", "--json").stdout)) == 1
    finally:
        ag.stop()
        shutil.rmtree(envs, ignore_errors=True)


# setup.py of a requirement that probes where its build runs.  It reports
# into the environment it is built into (the job then prints the report):
# processes it sees, its cgroup, no_new_privs, blocked signals, whether it
# could write the host's /tmp or join the root cgroup, and it leaves a
# setsid'd process that ignores SIGTERM.
PROBE = r'''
import os, signal, sys
from setuptools import setup
TOKEN = "@TOKEN@"
rep = []
procs = [p for p in os.listdir("/proc") if p.isdigit()]
rep.append("procs %d" % len(procs))
rep.append("cgroup " + ",".join(open("/proc/self/cgroup").read().split()))
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
rep.append("nnp " + st["NoNewPrivs"].strip())
rep.append("sigblk " + st["SigBlk"].strip())
rep.append("uid %d" % os.getuid())
rep.append("ifaces " + ",".join(sorted(
    l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:])))
try:
    open("/tmp/" + TOKEN, "w").write("x")
    rep.append("tmpwrite ok")
except OSError as e:
    rep.append("tmpwrite " + str(e))
try:
    open("/sys/fs/cgroup/cgroup.procs", "w").write(str(os.getpid()))
    rep.append("escape ok")
except OSError as e:
    rep.append("escape refused")
try:
    open("/etc/" + TOKEN, "w").write("x")
    rep.append("etcwrite ok")
except OSError as e:
    rep.append("etcwrite refused")
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 1000; echo " + TOKEN])
with open(os.path.join(sys.prefix, "probe-report"), "a") as f:
    f.write("\n".join(rep) + "\n")
setup(name="probe", version="1.0", py_modules=[])
'''


def _probe_job(tmp, token):
    src = os.path.join(tmp, "probe-src-" + token)
    os.makedirs(os.path.join(src, "probe"))
    with open(os.path.join(src, "probe", "setup.py"), "w") as f:
        f.write(PROBE.replace("@TOKEN@", token))
    return {"name": "probe", "source": {"path": src},
            "resources": {"cpus": 1},
            "environment": {"kind": "venv", "requirements": ["./probe"],
                            "pip_options": ["--no-index",
                                            "--no-build-isolation"]},
            "command": ["sh", "-c", 'cat "$VIRTUAL_ENV/probe-report"']}


def _leftovers(token):
    r = subprocess.run(["pgrep", "-f", token], capture_output=True, text=True)
    return r.stdout.split()


def _check_probe(log, token, ag):
    lines = [l for l in log.splitlines() if l.split(" ")[0] in (
        "procs", "cgroup", "nnp", "sigblk", "uid", "tmpwrite", "escape",
        "etcwrite")]
    rep = {}
    for l in lines:
        k, _, v = l.partition(" ")
        rep.setdefault(k, v)
    assert rep, log
    assert int(rep["procs"]) < 10, log  # its own pid namespace
    assert "_env" in rep["cgroup"], log  # the build's cgroup
    assert rep["nnp"] == "1", log
    assert int(rep["sigblk"], 16) == 0, log
    assert rep["uid"] != "0", log
    assert rep["escape"] == "refused", log
    assert rep["etcwrite"] == "refused", log
    assert not os.path.exists("/tmp/" + token)  # private /tmp
    assert _leftovers(token) == [], log


def test_build_code_is_sandboxed(tmp_path):
    ag = Agent(None)
    ag.start()
    token = "tether-probe-" + uuid.uuid4().hex[:10]
    try:
        job = _submit(ag, _probe_job(str(tmp_path), token), str(tmp_path))
        log = _wait_done(ag, job)
        assert "[env] building venv" in log, log
        _check_probe(log, token, ag)
    finally:
        for pid in _leftovers(token):
            subprocess.run(["kill", "-9", pid])
        ag.stop()


def test_lookahead_build_is_sandboxed(tmp_path):
    ag = Agent(None, max_jobs=1, cpus=2)
    ag.start()
    token = "tether-probe-" + uuid.uuid4().hex[:10]
    release = "/var/tmp/" + os.path.basename(ag.state_dir) + ".go"
    try:
        blocker = _submit(ag, {
            "name": "blocker", "resources": {"cpus": 1},
            "command": ["sh", "-c", "while [ ! -e %s ]; do sleep 0.1;"
                        " done" % release]}, str(tmp_path))
        wait_until(lambda: ag.local_state(blocker) == "running", 30,
                   what="the blocker to run")
        job = _submit(ag, _probe_job(str(tmp_path), token), str(tmp_path))
        wait_until(lambda: "environment ready ahead" in ag.output(), 120,
                   what="the look-ahead build")
        assert ag.local_state(job) == "queued"
        # the look-ahead build left nothing running, wrote no host /tmp
        assert _leftovers(token) == []
        assert not os.path.exists("/tmp/" + token)
        open(release, "w").close()
        log = _wait_done(ag, job)
        assert "[env] cache hit" in log, log
        _check_probe(log, token, ag)
        assert "ahead_" in log, log  # the look-ahead build's cgroup
    finally:
        if os.path.exists(release):
            os.unlink(release)
        for pid in _leftovers(token):
            subprocess.run(["kill", "-9", pid])
        ag.stop()


def test_requirements_file_symlink_out_of_source(tmp_path):
    """`d -> /dev` and requirements_file `d/zero`: the root runner would hash
    /dev/zero for ever; it refuses the file at once, saying why."""
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("/dev", src / "d")
    os.symlink("/etc/shadow", src / "shadow")
    ag = Agent(None)
    ag.start()
    try:
        for rel in ("d/zero", "shadow"):
            spec = {"name": "evil", "source": {"path": str(src)},
                    "environment": {"kind": "venv",
                                    "requirements_file": rel},
                    "command": ["true"]}
            t0 = time.monotonic()
            job = _submit(ag, spec, str(tmp_path))
            log = _wait_done(ag, job, timeout=60)
            assert time.monotonic() - t0 < 30, log
            assert "env_failed" in log, log
            assert f"'{rel}' in the source: it leads out of the work " \
                "directory" in log, log
    finally:
        ag.stop()


def test_cancel_stops_env_build_within_kill_grace(tmp_path):
    """A build whose code ignores SIGTERM: cancel ends the env phase within
    kill_grace (2 s here, write_spec's; the local agent has no cancel
    command, so the test writes the attempt's cancel file itself)."""
    from harness.gitserver import read_attempt, run_attempt, var_tmpdir
    root = var_tmpdir("tether-envcancel-")
    token = "tether-slow-" + uuid.uuid4().hex[:10]
    spec = _slow_spec(root, token)
    p = run_attempt(root, spec, wait=False)
    d = os.path.join(root, "state", "jobs", "1", "1")
    _cancel_slow_build(p, d, token)
    att = read_attempt(d)
    assert att["result"]["reason"] == "cancelled", att["log"]


# setup.py of a local requirement whose build hangs, deaf to SIGTERM; the
# token names its processes (_leftovers).
SLOW_SETUP = ("import os\nos.execv('/bin/sh', ['sh', '-c', "
              "\"trap '' TERM; sleep 1000; : %s\"])\n")
SLOW_ENV = {"kind": "venv", "requirements": ["./slow"],
            "pip_options": ["--no-index", "--no-build-isolation"]}


def _slow_spec(root, token):
    src = os.path.join(root, "src")
    os.makedirs(os.path.join(src, "slow"))
    with open(os.path.join(src, "slow", "setup.py"), "w") as f:
        f.write(SLOW_SETUP % token)
    return {"name": "slow", "source": {"path": src}, "environment": SLOW_ENV,
            "command": ["true"]}


def _slow_repo(root, token):
    """A git repo holding that requirement (the agent's tests)."""
    from harness.gitserver import make_repo
    bare, _, _ = make_repo(root, files={"slow/setup.py": SLOW_SETUP % token})
    return bare


def _build_cgroups(d):
    job = json.load(open(os.path.join(d, "spec.json")))["job"]
    return glob.glob(f"/sys/fs/cgroup/*/tether-test/*{job}_*_env") + \
        glob.glob(f"/sys/fs/cgroup/tether-test/*{job}_*_env")


def _reap(p, token):
    """Kill the runner p if it still runs and whatever its build left."""
    if p.poll() is None:
        p.kill()
    for pid in _leftovers(token):
        subprocess.run(["kill", "-9", pid])


def _cancel_slow_build(p, d, token):
    from harness import runner as R
    try:
        wait_until(lambda: _leftovers(token), 120, interval=0.2,
                   what="setup.py to run")
        t0 = time.monotonic()
        R.write_cancel(d)
        p.wait(30)
        took = time.monotonic() - t0
        assert took < 2 + 1.5, took  # kill_grace + the once-a-second check
        assert _leftovers(token) == []
        assert _build_cgroups(d) == []
    finally:
        _reap(p, token)


def test_cancel_stops_lookahead_build(tmp_path):
    """`tether-runner envs build DIR` (the agent's look-ahead build) stops
    when the agent writes DIR/cancel (its job was cancelled): within
    kill_grace, its cgroup removed, nothing left running."""
    from harness.gitserver import var_tmpdir, write_spec
    root = var_tmpdir("tether-aheadcancel-")
    token = "tether-slow-" + uuid.uuid4().hex[:10]
    d = os.path.join(root, "state", "ahead", "L1-1")
    write_spec(root, d, _slow_spec(root, token))
    p = subprocess.Popen([binary("tether-runner"), "envs", "build", d],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    _cancel_slow_build(p, d, token)
    assert p.returncode == 1
    assert "cancelled while building the environment" in p.stderr.read()


def test_interpreter_from_the_source_never_runs_as_root(tmp_path):
    """environment.python names a script of the job's own source (its
    attempt directory's path is predictable): the runner asks it for its
    version, which must not happen as root on the host."""
    token = "tether-py-" + uuid.uuid4().hex[:10]
    src = tmp_path / "src"
    src.mkdir()
    evil = src / "py"
    evil.write_text("#!/bin/sh\nid -u > /var/tmp/%s\necho 3.11.2 x86_64\n"
                    % token)
    evil.chmod(0o755)
    ag = Agent(None)
    ag.start()
    try:
        spec = {"name": "evil", "source": {"path": str(src)},
                "environment": {"kind": "venv", "python": os.path.join(
                    ag.state_dir, "jobs", "L1", "1", "work", "py")},
                "command": ["true"]}
        job = _submit(ag, spec, str(tmp_path))
        assert job == "L1"
        log = _wait_done(ag, job, timeout=60)
        assert not os.path.exists("/var/tmp/" + token), \
            open("/var/tmp/" + token).read()
        assert "env_failed" in log, log
    finally:
        if os.path.exists("/var/tmp/" + token):
            os.unlink("/var/tmp/" + token)
        ag.stop()


def test_network_none_build_has_no_network(tmp_path):
    """`network: none` (the setting under test) applies to the build: only
    lo in its network namespace; a requirement shipped in the source still
    installs."""
    from harness.gitserver import read_attempt, run_attempt, var_tmpdir
    root = var_tmpdir("tether-netnone-")
    token = "tether-probe-" + uuid.uuid4().hex[:10]
    spec = _probe_job(root, token)
    spec["network"] = "none"
    att = run_attempt(root, spec)
    try:
        assert att["result"]["reason"] == "succeeded", att["log"]
        assert "\nifaces lo\n" in att["log"], att["log"]
    finally:
        for pid in _leftovers(token):
            subprocess.run(["kill", "-9", pid])


def test_cancelled_job_stops_its_lookahead_build(tmp_path):
    """Through the agent: a job waiting in the queue whose look-ahead build
    hangs (its build code ignores SIGTERM) is cancelled at the workspace;
    the agent stops the build: nothing of it is left running."""
    from harness.workspace import Workspace
    token = "tether-slow-" + uuid.uuid4().hex[:10]
    bare = _slow_repo(str(tmp_path), token)
    ws = Workspace().start()
    release = None
    try:
        ag = Agent(ws, max_jobs=1, cpus=2).start()
        release = "/var/tmp/" + os.path.basename(ag.state_dir) + ".go"
        blocker = ws.submit(name="blocker", resources={"cpus": 1},
                            command=["sh", "-c", "while [ ! -e %s ]; do "
                                     "sleep 0.1; done" % release])
        ag.wait_job(blocker, "running", timeout=30)
        job = ws.submit(name="slow", resources={"cpus": 1},
                        source={"git": {"url": bare}},
                        environment=SLOW_ENV, command=["true"])
        wait_until(lambda: _leftovers(token), 120, interval=0.2,
                   what="the look-ahead build's setup.py")
        t0 = time.monotonic()
        st, _, b = ws.api("POST", f"/api/v1/jobs/{job}/cancel")
        assert st == 200, b
        wait_until(lambda: not _leftovers(token), 30, interval=0.1,
                   what="the look-ahead build to stop")
        took = time.monotonic() - t0
        # kill_grace (2 s in the test agent) + a fence check + a poll
        assert took < 10, took
        assert "stopping its look-ahead build" in ag.output()
        ag.wait_job(job, "cancelled", timeout=30)
    finally:
        if release:
            open(release, "w").close()
        for pid in _leftovers(token):
            subprocess.run(["kill", "-9", pid])
        ws.stop()
        if release and os.path.exists(release):
            os.unlink(release)


# setup.py of a local requirement that plants, in the prefix it is built
# into, what used to be the cache's usage record: a FIFO (the root runner
# opened it to read the record and blocked for ever, holding the key's
# lock) next to a symlink to a FIFO of the host.
PLANT = r'''
import os, sys
from setuptools import setup
p = os.path.join(sys.prefix, ".tether-env.json")
try:
    os.unlink(p)
except OSError:
    pass
os.mkfifo(p)
with open(os.path.join(sys.prefix, "pkg-marker"), "w") as f:
    f.write("@MARK@")
setup(name="plant", version="1.0", py_modules=[])
'''


def _local_pkg_job(tmp, mark, plant=True):
    src = os.path.join(tmp, "plant-src-" + uuid.uuid4().hex[:8])
    os.makedirs(os.path.join(src, "pkg"))
    code = PLANT.replace("@MARK@", mark)
    if not plant:
        code = code.replace("os.mkfifo(p)", "pass")
    with open(os.path.join(src, "pkg", "setup.py"), "w") as f:
        f.write(code)
    return {"name": "plant", "source": {"path": src},
            "environment": {"kind": "venv", "requirements": ["./pkg"],
                            "pip_options": ["--no-index",
                                            "--no-build-isolation"]},
            "command": ["sh", "-c", 'echo "marker $(cat $VIRTUAL_ENV/pkg-marker)"']}


def test_build_cannot_plant_the_cache_record(tmp_path):
    """The usage record that makes a cache entry complete lies outside the
    tree the build writes: a FIFO planted where it used to be does not
    hang the root runner (it blocked for ever, holding the key's lock),
    and the environment is complete and listed."""
    ag = Agent(None)
    ag.start()
    try:
        spec = _local_pkg_job(str(tmp_path), "one")
        job = _submit(ag, spec, str(tmp_path))
        log = _wait_done(ag, job, timeout=120)
        assert "marker one" in log, log
        env_dir = os.path.join(ag.state_dir, "envs")
        listed = json.loads(subprocess.run(
            [binary("tether-runner"), "envs", "--env-dir", env_dir, "--json"],
            capture_output=True, text=True, timeout=30, check=True).stdout)
        keys = [e["key"] for e in listed["environments"]] \
            if isinstance(listed, dict) else [e["key"] for e in listed]
        assert len(keys) == 1, listed
        assert os.path.isfile(os.path.join(env_dir, ".meta",
                                           keys[0] + ".json"))
    finally:
        ag.stop()


def test_local_requirement_is_not_shared_across_sources(tmp_path):
    """`requirements: ["./pkg"]` names code in the job's source: two jobs
    with that same spec text but different sources must not share one
    environment (one job's package would run in the other's job)."""
    ag = Agent(None)
    ag.start()
    try:
        a = _submit(ag, _local_pkg_job(str(tmp_path), "from-a", False),
                    str(tmp_path))
        log = _wait_done(ag, a, timeout=120)
        assert "marker from-a" in log, log
        b = _submit(ag, _local_pkg_job(str(tmp_path), "from-b", False),
                    str(tmp_path))
        log = _wait_done(ag, b, timeout=120)
        assert "marker from-b" in log, log
        assert "[env] cache hit" not in log, log
    finally:
        ag.stop()


def test_timeout_stops_a_hung_build(tmp_path):
    """The job's timeout counts from the attempt's start, the environment
    build included (docs/jobspec.md): a build whose setup.py hangs and
    ignores SIGTERM ends the job `timed_out` within timeout + kill_grace +
    a fence check, its processes and build cgroup gone, the slot free for
    the next job.  (Before, the timeout began with the run: such a build
    held the node until someone cancelled it.)"""
    from harness.workspace import Workspace
    token = "tether-slow-" + uuid.uuid4().hex[:10]
    bare = _slow_repo(str(tmp_path), token)
    ws = Workspace().start()
    ag = None
    try:
        ag = Agent(ws, max_jobs=1).start()
        job = ws.submit(name="slow", timeout="4s", source={"git": {"url": bare}},
                        environment=SLOW_ENV, command=["true"])
        wait_until(lambda: _leftovers(token), 120, interval=0.2,
                   what="the build's setup.py")
        t0 = time.monotonic()
        j = ag.wait_job(job, "timed_out", timeout=30)
        took = time.monotonic() - t0
        # under 4 s of timeout left + kill_grace (2 s in the test agent) +
        # the once-a-second check + the agent's report, with room for a
        # loaded machine (the old runner never stopped it)
        assert took < 12, took
        assert _leftovers(token) == []
        assert _build_cgroups(ag.attempt_dir(job)) == []
        log = ag.ws_log(job).decode()
        assert "timed_out while building the environment" in log, log
        nxt = ws.submit(name="next", command=["true"])
        ag.wait_job(nxt, "succeeded", timeout=30)
    finally:
        for pid in _leftovers(token):
            subprocess.run(["kill", "-9", pid])
        if ag is not None:
            ag.stop()
        ws.stop()


def test_timeout_stops_a_hung_lookahead_build(tmp_path):
    """`tether-runner envs build DIR` (the agent's look-ahead build) is
    bounded by the job's timeout as the job's own build is."""
    from harness.gitserver import var_tmpdir, write_spec
    root = var_tmpdir("tether-aheadtimeout-")
    token = "tether-slow-" + uuid.uuid4().hex[:10]
    d = os.path.join(root, "state", "ahead", "L1-1")
    spec = _slow_spec(root, token)
    spec["timeout"] = "3s"
    write_spec(root, d, spec)
    t0 = time.monotonic()
    p = subprocess.Popen([binary("tether-runner"), "envs", "build", d],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        p.wait(30)
        took = time.monotonic() - t0
        # + kill_grace + a check, with room for a loaded machine (the old
        # runner never stopped it)
        assert 3 <= took < 3 + 2 + 4, took
        assert p.returncode == 1
        assert "timed_out while building the environment" in p.stderr.read()
        assert _leftovers(token) == []
        assert _build_cgroups(d) == []
    finally:
        _reap(p, token)
