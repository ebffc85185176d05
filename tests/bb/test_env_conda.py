"""conda environments against a STAND-IN tool.

Real conda, mamba or micromamba cannot be installed on this machine (no
internet, not in Debian), so real conda is NOT exercised here.  Each test
writes a small shell script named micromamba, mamba or conda that records its
argv and creates PREFIX/bin/python (a link to /usr/bin/python3), or fails like
a real solver when the environment.yml asks for a package that does not
exist.  What is tested is ours: which tool is picked, its exact command line,
the activation of the prefix for the job, and a solver failure ending
env_failed with the tool's message in the log."""
import json
import os
import pwd
import subprocess
import time

import pytest

from harness.common import wait_until
from harness.gitserver import phase_end, read_attempt, run_attempt, var_tmpdir

STANDIN = r"""#!/bin/sh
# stand-in for {tool}: record argv, make a prefix with a python
# (records go to the current directory: the job's work directory, the
# only writable place of a build's sandbox besides the prefix)
printf '%s\n' "$0" "$@" > {tool}.argv
id -u > {tool}.uid
# like the real tools: a writable HOME and package cache
mkdir -p "$MAMBA_ROOT_PREFIX/pkgs" && touch "$HOME/.standin" || exit 3
prefix=; file=
while [ $# -gt 0 ]; do
  case "$1" in -p) prefix=$2; shift ;; -f) file=$2; shift ;; esac
  shift
done
if grep -q nonexistent-pkg "$file"; then
  echo "error    libmamba Could not solve for environment specs"
  echo "    The following package could not be installed"
  echo "    └─ nonexistent-pkg does not exist (perhaps a typo or a missing channel)."
  exit 1
fi
if grep -q slow-pkg "$file"; then
  echo "Solving environment..."
  sleep 120
fi
mkdir -p "$prefix/bin" "$prefix/conda-meta"
cp "$file" "$prefix/conda-meta/environment.yml"
ln -s /usr/bin/python3 "$prefix/bin/python"
echo "Transaction finished"
"""

YML = "name: demo\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n"
SHOW = ("/bin/sh", "-c", 'echo "P=$CONDA_PREFIX D=$CONDA_DEFAULT_ENV '
        'S=$CONDA_SHLVL"; command -v python; python -c "print(6*7)"')


def make_tools(tools):
    """A 0755 dir with stand-ins for tools; (bin, its directory)."""
    d = var_tmpdir("tether-conda-")
    b, rec = os.path.join(d, "bin"), os.path.join(d, "rec")
    os.makedirs(b)
    os.makedirs(rec)
    os.chmod(rec, 0o777)  # builders run as the job user
    for t in tools:
        p = os.path.join(b, t)
        with open(p, "w") as f:
            f.write(STANDIN.format(tool=t, rec=rec))
        os.chmod(p, 0o755)
    return b, rec


def conda_spec(yml=YML, **env):
    e = {"kind": "conda", "inline": yml}
    e.update(env)
    return {"name": "conda", "command": list(SHOW), "environment": e}


def run_conda(root, spec, bindir, job="1", settings=None):
    return run_attempt(root, spec, job=job, settings=settings,
                       env={"PATH": bindir + ":/usr/local/bin:/usr/bin:/bin"})


def work(att):
    return os.path.join(att["dir"], "work")


def argv_of(att, tool):
    return open(os.path.join(work(att), tool + ".argv")).read().splitlines()


# environment.yml as the builder reads it: written by the runner into the
# work directory (the sandbox shows it at /tether/work)
YML_PATH = "/tether/work/.tether-environment.yml"


def env_prefix(root):
    envs = os.path.join(root, "envs")
    (key,) = [n for n in os.listdir(envs) if len(n) == 64]
    return os.path.join(envs, key)


@pytest.mark.parametrize("tool", ["micromamba", "mamba", "conda"])
def test_exact_argv_and_activation(tool):
    b, rec = make_tools([tool])
    root = var_tmpdir()
    att = run_conda(root, conda_spec(), b)
    assert att["result"]["reason"] == "succeeded", att["log"]
    prefix = env_prefix(root)
    yml = YML_PATH
    want = {"micromamba": ["create", "-y", "-p", prefix, "-f", yml],
            "mamba": ["create", "-y", "-p", prefix, "-f", yml],
            "conda": ["env", "create", "-p", prefix, "-f", yml]}[tool]
    assert argv_of(att, tool) == [os.path.join(b, tool)] + want
    # the builder ran as the job user, not root
    uid = int(open(os.path.join(work(att), tool + ".uid")).read())
    assert uid == pwd.getpwnam("tether-job").pw_uid
    assert f"P={prefix} D={prefix} S=1\n" in att["log"]
    assert f"{prefix}/bin/python\n42\n" in att["log"]
    assert "[env] Transaction finished" in att["log"]
    # the environment.yml the tool read is the job's, and was cleaned up
    assert open(os.path.join(prefix, "conda-meta/environment.yml")).read() == YML
    assert not os.path.exists(os.path.join(work(att),
                                           ".tether-environment.yml"))
    # same spec again: cache hit, the tool is not run
    again = run_conda(root, conda_spec(), b, job="2")
    assert again["result"]["reason"] == "succeeded", again["log"]
    assert "[env] cache hit: conda environment" in again["log"]
    assert not os.path.exists(os.path.join(work(again), tool + ".argv"))
    assert phase_end(again, "env")["duration"] < 1.0
    assert phase_end(again, "env")["cache_hit"] is True
    assert phase_end(att, "env")["cache_hit"] is False


def test_tool_choice_order():
    b, rec = make_tools(["micromamba", "mamba", "conda"])
    root = var_tmpdir()
    # none asked: micromamba first
    att = run_conda(root, conda_spec(), b)
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert [n for n in os.listdir(work(att)) if n.endswith(".argv")] == \
        ["micromamba.argv"]
    # the spec's tool wins (a different tool is a different env)
    att = run_conda(root, conda_spec(tool="conda"), b, job="2")
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert [n for n in os.listdir(work(att)) if n.endswith(".argv")] == \
        ["conda.argv"]
    # then the runner setting conda_tool
    att = run_conda(root, conda_spec(YML + "  - numpy\n"), b, job="3",
                    settings={"conda_tool": "mamba"})
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "mamba.argv" in os.listdir(work(att))


def test_no_tool_is_env_failed():
    b, rec = make_tools([])
    root = var_tmpdir()
    att = run_attempt(root, conda_spec(), env={"PATH": b + ":/usr/bin:/bin"})
    assert att["result"]["reason"] == "env_failed"
    assert "no micromamba, mamba or conda" in att["result"]["message"]


def test_solver_failure_is_env_failed_with_message():
    b, rec = make_tools(["micromamba"])
    root = var_tmpdir()
    bad = YML + "  - nonexistent-pkg=1.0\n"
    att = run_conda(root, conda_spec(bad), b)
    assert att["result"]["reason"] == "env_failed", att["log"]
    assert "[env] error    libmamba Could not solve for environment specs" \
        in att["log"]
    msg = att["result"]["message"]
    assert "micromamba could not create the environment" in msg
    assert "nonexistent-pkg does not exist" in msg
    envs = os.path.join(root, "envs")
    assert [n for n in os.listdir(envs) if not n.startswith(".")] == []


def test_environment_file_from_source():
    b, rec = make_tools(["micromamba"])
    root = var_tmpdir()
    src = os.path.join(root, "src")
    os.makedirs(src)
    open(os.path.join(src, "environment.yml"), "w").write(YML)
    spec = {"name": "c", "command": list(SHOW), "source": {"path": src},
            "environment": {"kind": "conda", "file": "environment.yml"}}
    att = run_conda(root, spec, b)
    assert att["result"]["reason"] == "succeeded", att["log"]
    assert "S=1\n" in att["log"]


def test_cancel_stops_a_long_build():
    b, rec = make_tools(["micromamba"])
    root = var_tmpdir()
    p = run_attempt(root, conda_spec(YML + "  - slow-pkg\n"), wait=False,
                    env={"PATH": b + ":/usr/bin:/bin"})
    d = os.path.join(root, "state", "jobs", "1", "1")
    wait_until(lambda: "Solving environment" in open(os.path.join(d, "log")).read(),
               30, what="the build to start")
    pids = subprocess.run(["pgrep", "-f", os.path.join(b, "micromamba")],
                          capture_output=True, text=True).stdout.split()
    assert pids
    t0 = time.monotonic()
    with open(os.path.join(d, "cancel.tmp"), "w") as f:
        json.dump({"reason": "cancelled", "grace": 1}, f)
    os.rename(os.path.join(d, "cancel.tmp"), os.path.join(d, "cancel"))
    p.wait(30)
    assert time.monotonic() - t0 < 10
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)
    att = read_attempt(d)
    assert "cancelled while building the environment" in att["result"]["message"]
    assert att["result"]["reason"] in ("cancelled", "env_failed")
    assert "[env] stopping" in att["log"]
    envs = os.path.join(root, "envs")
    assert [n for n in os.listdir(envs) if not n.startswith(".")] == []
