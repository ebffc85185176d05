"""venv environments through `tether-runner run`, from a wheelhouse the test
builds offline (`/usr/bin/python3 -m pip wheel` of a tiny package it writes):
the first job builds, the second with the same spec is a cache hit, two
simultaneous jobs with a new spec build it once, and eviction keeps the cache
under its budget without removing an environment in use."""
import json
import os
import subprocess
import time

import pytest

from harness.common import binary, run, tmpdir, wait_until
from harness.gitserver import (phase_end, read_attempt, run_attempt,
                               var_tmpdir, write_spec)

PY = "/usr/bin/python3"


@pytest.fixture(scope="module")
def wheelhouse():
    # not under /tmp: builds run in the sandbox, whose /tmp is private
    d = var_tmpdir("tether-wheels-")
    os.chmod(d, 0o755)
    for name, value in (("tinypkg", 41), ("otherpkg", 7)):
        src = os.path.join(d, "src-" + name)
        os.makedirs(os.path.join(src, name))
        open(os.path.join(src, name, "__init__.py"), "w").write(
            f"VALUE = {value}\n")
        open(os.path.join(src, "pyproject.toml"), "w").write(
            '[build-system]\nrequires = ["setuptools"]\n'
            'build-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{name}"\nversion = "1.0"\n')
        run([PY, "-m", "pip", "wheel", "-q", "--no-index", "--no-deps",
             "--no-build-isolation", "-w", os.path.join(d, "wheels"), src])
    return os.path.join(d, "wheels")


def root_dir():
    # not under /tmp: the sandboxed job must see the env prefix (its /tmp
    # is private), and the job user must be able to reach it
    return var_tmpdir("tether-venv-")


def venv_spec(wheels, reqs=("tinypkg==1.0",), mod="tinypkg", extra=None):
    env = {"kind": "venv", "requirements": list(reqs),
           "pip_options": ["--no-index", "--find-links", wheels]}
    env.update(extra or {})
    return {"name": "venv", "environment": env,
            "command": ["python", "-c",
                        f"import sys, {mod}; print('value', {mod}.VALUE);"
                        " print('prefix', sys.prefix)"]}


def envs_json(root):
    r = run([binary("tether-runner"), "envs", "--env-dir",
             os.path.join(root, "envs"), "--json"])
    return json.loads(r.stdout)


def test_first_builds_second_is_cache_hit(wheelhouse):
    root = root_dir()
    first = run_attempt(root, venv_spec(wheelhouse))
    assert first["result"]["reason"] == "succeeded", first["log"]
    assert "value 41" in first["log"]
    assert "[env] building venv environment" in first["log"]
    assert "/usr/bin/python3 -m venv" in first["log"]
    assert "[env] Successfully installed tinypkg-1.0" in first["log"]
    key = [e["key"] for e in envs_json(root)]
    assert len(key) == 1
    assert f"prefix {root}/envs/{key[0]}" in first["log"]

    # built as the job user, then sealed: root's, not writable by jobs
    prefix = os.path.join(root, "envs", key[0])
    for rel in ("", "pyvenv.cfg", "bin", "lib"):
        st = os.stat(os.path.join(prefix, rel))
        assert st.st_uid == 0 and not st.st_mode & 0o022, (rel, st)

    second = run_attempt(root, venv_spec(wheelhouse), job="2")
    assert second["result"]["reason"] == "succeeded", second["log"]
    assert "value 41" in second["log"]
    assert f"[env] cache hit: venv environment {key[0][:12]}" in second["log"]
    assert "building" not in second["log"]
    assert phase_end(first, "env")["cache_hit"] is False
    assert phase_end(second, "env")["cache_hit"] is True
    assert phase_end(second, "env")["env_key"] == key[0]
    t1 = phase_end(first, "env")["duration"]
    t2 = phase_end(second, "env")["duration"]
    assert t2 < t1 / 3 and t2 < 1.0, (t1, t2)
    assert second["result"]["durations"]["env"] == pytest.approx(t2, abs=0.01)
    # no half-built leftovers next to the environment
    assert sorted(os.listdir(os.path.join(root, "envs"))) == \
        sorted([".locks", ".meta", ".python-versions", key[0]])


def test_cache_hit_runs_no_interpreter(wheelhouse):
    """The key's interpreter version is remembered by the interpreter's
    stat (docs/performance.md F4): a cache hit spawns no python."""
    root = root_dir()
    tools = var_tmpdir("tether-pywrap-")
    wrap = os.path.join(tools, "python3")
    with open(wrap, "w") as f:
        # counts its runs in the current directory: builders run in the
        # work directory, the one writable place of their sandbox
        f.write("#!/bin/sh\necho run >> .pyruns || true\n"
                f"exec {PY} \"$@\"\n")
    os.chmod(wrap, 0o755)
    spec = venv_spec(wheelhouse, extra={"python": wrap})
    spec["command"] = ["true"]  # only the env phase may run python
    first = run_attempt(root, spec)
    assert first["result"]["reason"] == "succeeded", first["log"]
    runs = os.path.join(first["dir"], "work", ".pyruns")
    assert open(runs).read().count("run") >= 1  # the wrapper ran
    second = run_attempt(root, spec, job="2")
    assert second["result"]["reason"] == "succeeded", second["log"]
    assert phase_end(second, "env")["cache_hit"] is True
    assert not os.path.exists(os.path.join(second["dir"], "work", ".pyruns"))


def test_env_dir_inside_the_0700_state_dir(wheelhouse):
    """The default layout: envs/ inside the root-only state directory.  The
    builder (the job user) and the sandboxed job both reach the prefix."""
    root = root_dir()
    state = os.path.join(root, "state")
    os.makedirs(state, mode=0o700)
    os.chmod(state, 0o700)
    att = run_attempt(root, venv_spec(wheelhouse),
                      settings={"env_dir": os.path.join(state, "envs")})
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "value 41" in att["log"]
    assert f"prefix {state}/envs/" in att["log"]


def test_system_python_not_pyenv(wheelhouse):
    root = root_dir()
    spec = venv_spec(wheelhouse, extra={"system_site_packages": True})
    spec["command"] = ["python", "-c",
                       "import sys, tinypkg; print('base', sys.base_prefix)"]
    att = run_attempt(root, spec)
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "base /usr\n" in att["log"]
    assert "--system-site-packages" in att["log"]


def test_simultaneous_jobs_build_once(wheelhouse):
    root = root_dir()
    spec = venv_spec(wheelhouse, reqs=("tinypkg==1.0", "otherpkg"))
    procs = [run_attempt(root, spec, job=str(i), wait=False) for i in (1, 2)]
    for p in procs:
        p.wait(180)
    atts = [read_attempt(os.path.join(root, "state", "jobs", str(i), "1"))
            for i in (1, 2)]
    for a in atts:
        assert a["result"]["reason"] == "succeeded", a["log"]
        assert "value 41" in a["log"]
    logs = "".join(a["log"] for a in atts)
    assert logs.count("[env] building venv environment") == 1, logs
    assert logs.count("Successfully installed") == 1
    assert logs.count("[env] cache hit") == 1
    assert len(envs_json(root)) == 1


def test_requirements_file_from_source(wheelhouse):
    root = root_dir()
    src = os.path.join(root, "src")
    os.makedirs(src)
    open(os.path.join(src, "requirements.txt"), "w").write(
        "-r more.txt\ntinypkg==1.0\n")
    open(os.path.join(src, "more.txt"), "w").write("otherpkg\n")
    spec = venv_spec(wheelhouse, reqs=(), mod="otherpkg",
                     extra={"requirements_file": "requirements.txt"})
    del spec["environment"]["requirements"]
    spec["source"] = {"path": src}
    att = run_attempt(root, spec)
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "value 7" in att["log"]
    assert "Successfully installed otherpkg-1.0 tinypkg-1.0" in att["log"]
    # the file's contents are in the key: a change builds a new env
    open(os.path.join(src, "more.txt"), "w").write("otherpkg==1.0\n")
    open(os.path.join(src, "requirements.txt"), "a").write("# changed\n")
    att = run_attempt(root, spec, job="2")
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "[env] building venv" in att["log"]
    assert len(envs_json(root)) == 2


def test_pip_failure_is_env_failed(wheelhouse):
    root = root_dir()
    att = run_attempt(root, venv_spec(wheelhouse, reqs=("nosuchpkg==9",)))
    assert att["result"]["reason"] == "env_failed"
    assert "pip install failed" in att["result"]["message"]
    assert "nosuchpkg" in att["result"]["message"]
    assert envs_json(root) == []
    assert [n for n in os.listdir(os.path.join(root, "envs"))
            if not n.startswith(".")] == []


def test_eviction_under_budget_never_in_use(wheelhouse):
    root = root_dir()
    a = run_attempt(root, venv_spec(wheelhouse))
    assert a["result"]["reason"] == "succeeded", a["log"]
    (env_a,) = envs_json(root)
    # job 2 holds env A while it runs (it waits for a file we create)
    flag = os.path.join(root, "go")
    hold = venv_spec(wheelhouse)
    hold["command"] = ["/bin/sh", "-c",
                       f"while [ ! -e {flag} ]; do sleep 0.05; done; echo held"]
    p = run_attempt(root, hold, job="2", wait=False)
    log2 = os.path.join(root, "state", "jobs", "2", "1", "log")
    wait_until(lambda: "cache hit" in open(log2).read(), 60, what="job 2 env")
    # env B with a budget smaller than both: A is in use and must stay
    budget = {"env_budget_bytes": env_a["size_bytes"] + 4096}
    b = run_attempt(root, venv_spec(wheelhouse, reqs=("otherpkg",),
                                    mod="otherpkg"), job="3", settings=budget)
    assert b["result"]["reason"] == "succeeded", b["log"]
    keys = {e["key"]: e for e in envs_json(root)}
    assert env_a["key"] in keys and keys[env_a["key"]]["in_use"]
    assert len(keys) == 2
    open(flag, "w").close()
    assert p.wait(60) == 0
    # now A is free: the next build (C) under the budget evicts A (least
    # recently used) and B, keeping only C, which is in use while built
    c = run_attempt(root, venv_spec(wheelhouse, reqs=("otherpkg", "tinypkg"),
                                    mod="tinypkg"), job="4", settings=budget)
    assert c["result"]["reason"] == "succeeded", c["log"]
    assert "[env] evicted 2 unused environment(s)" in c["log"], c["log"]
    left = envs_json(root)
    assert len(left) == 1 and left[0]["key"] not in (env_a["key"],)
    assert sum(e["size_bytes"] for e in left) <= budget["env_budget_bytes"] or \
        len(left) == 1
    # tether-runner envs prune --all removes what nobody uses
    r = run([binary("tether-runner"), "envs", "prune", "--all", "--env-dir",
             os.path.join(root, "envs")])
    assert "removed 1 environment(s)" in r.stdout
    assert envs_json(root) == []


def test_look_ahead_build(wheelhouse):
    """`tether-runner envs build DIR` builds a queued job's environment ahead
    of time; the job then starts with a cache hit."""
    root = root_dir()
    spec = venv_spec(wheelhouse)
    pre = os.path.join(root, "prebuild", "1")
    write_spec(root, pre, spec)
    r = run([binary("tether-runner"), "envs", "build", pre])
    out = json.loads(r.stdout)
    assert out["kind"] == "venv" and out["cache_hit"] is False
    assert "[env] Successfully installed tinypkg-1.0" in \
        open(os.path.join(pre, "log")).read()
    att = run_attempt(root, spec)
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert phase_end(att, "env")["cache_hit"] is True
    assert phase_end(att, "env")["env_key"] == out["key"]
    r = run([binary("tether-runner"), "envs", "build", pre])
    assert json.loads(r.stdout)["cache_hit"] is True
    # a bad spec says why
    bad = os.path.join(root, "prebuild", "2")
    write_spec(root, bad, venv_spec(wheelhouse, reqs=("nosuchpkg",)))
    r = run([binary("tether-runner"), "envs", "build", bad], check=False)
    assert r.returncode == 1 and "pip install failed" in r.stderr


def test_cancel_while_waiting_for_another_jobs_build(wheelhouse):
    """A job waiting for the build lock that another job holds (here: the
    test holds it) stops on cancel within seconds; it waited for the lock
    with no look at cancel or the lease, for as long as the other build
    took (for ever, with a build that hangs)."""
    import fcntl
    from harness.gitserver import cancel_when, log_has
    root = root_dir()
    first = run_attempt(root, venv_spec(wheelhouse))
    assert first["result"]["reason"] == "succeeded", first["log"]
    (key,) = [e["key"] for e in envs_json(root)]
    run([binary("tether-runner"), "envs", "prune", "--env-dir",
         os.path.join(root, "envs"), "--all"])
    lock = open(os.path.join(root, "envs", ".locks", key + ".lock"), "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        p = run_attempt(root, venv_spec(wheelhouse), job="2", wait=False)
        d = os.path.join(root, "state", "jobs", "2", "1")
        att = cancel_when(p, d, log_has(d, "waiting: another job is building"))
        assert att["result"]["reason"] == "cancelled", att["log"]
    finally:
        lock.close()
