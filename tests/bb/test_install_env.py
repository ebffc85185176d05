"""Issue 18's acceptance on a node installed the documented way: install.sh
with its defaults (state dir /var/lib/tether, the env cache inside it at
/var/lib/tether/envs, the job user tether-job, agent.conf from the sample),
registered to a workspace with a one-use token and started with --start (no
systemd here), then driven with the `tether` CLI as a user would:

- a venv job whose source (a --dir snapshot) ships a wheel and a
  requirements.txt naming it, installed with `pip_options: ["--no-index"]`,
  succeeds and imports the package;
- a venv job with an empty requirements file succeeds.

Both environments are built in the default cache inside the 0700 state dir
(before issue 18 every such job ended env_failed: "Could not open
requirements file").  uninstall.sh --purge removes it all afterwards.

This test installs on this host's fixed paths (/usr/local/bin, /etc/tether,
/var/lib/tether), like test_docs_commands.py: it must not run beside another
test that does."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

from harness.common import BUILD_DIR, SOURCE_DIR, binary, tmpdir
from harness.workspace import Workspace
from test_env_sandbox import wheel  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (install.sh on this host)")

STATE = "/var/lib/tether"


def _script(name, *args, timeout=120):
    return subprocess.run(["bash", os.path.join(SOURCE_DIR, "install", name),
                           *args], capture_output=True, text=True,
                          timeout=timeout)


def _cleanup():
    _script("uninstall.sh", "--purge", "--drain-timeout", "60")


@pytest.fixture
def default_workspace():
    """A workspace with its documented defaults: the installed agent runs with
    its own (a 30 s heartbeat), which the harness's fast lease (3 s) would
    declare lost mid-build."""
    ws = Workspace()
    ws.settings.clear()
    ws.start()
    yield ws
    ws.stop()


def _tether(ws, *args, timeout=240):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
               TETHER_CA=ws.ca_file, XDG_CONFIG_HOME=os.path.join(tmpdir(), "cfg"))
    return subprocess.run([binary("tether"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _agent_log():
    try:
        with open("/var/log/tether-agent.log") as f:
            return f.read()[-3000:]
    except OSError:
        return ""


def _source(wheel_path, reqs):
    """A job's source directory: wheels/<the wheel>, requirements.txt."""
    d = tmpdir("tether-src-")
    os.makedirs(os.path.join(d, "wheels"))
    shutil.copy(wheel_path, os.path.join(d, "wheels"))
    with open(os.path.join(d, "requirements.txt"), "w") as f:
        f.write(reqs)
    return d


def _submit_follow(ws, src, code):
    spec = {"name": "reqs-" + uuid.uuid4().hex[:6],
            "environment": {"kind": "venv",
                            "requirements_file": "requirements.txt",
                            "pip_options": ["--no-index"]},
            "command": ["python", "-c", code]}
    path = os.path.join(tmpdir(), "job.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    r = _tether(ws, "submit", path, "--dir", src, "--follow")
    assert r.returncode == 0, (f"job did not succeed (rc {r.returncode}):\n"
                               f"{r.stdout[-3000:]}\n{r.stderr[-2000:]}\n"
                               f"agent log:\n{_agent_log()}")
    return r.stdout


def test_requirements_file_on_a_node_installed_with_install_sh(default_workspace, wheel):  # noqa: F811
    binary("tether-agent")  # fail early with the build hint
    workspace = default_workspace
    _cleanup()
    try:
        r = _script("install.sh", "--build-dir", BUILD_DIR, "--workspace",
                    workspace.url, "--ca", workspace.ca_file, "--token",
                    workspace.token(uses=1), "--name", "installed-node",
                    "--start")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "registered with " + workspace.url in r.stdout, r.stdout + _agent_log()
        # the documented defaults, not a test setting
        with open("/etc/tether/agent.conf") as f:
            conf = [ln.strip() for ln in f]
        assert not [ln for ln in conf if ln.startswith(("state_dir", "env_dir", "job_user"))], conf

        name = os.path.basename(wheel)
        src = _source(wheel, f"./wheels/{name}\n")
        out = _submit_follow(ws=workspace, src=src, code=(
            "import sys, tinypkg; print('prefix', sys.prefix);"
            " print('value', tinypkg.VALUE)"))
        assert "value 41" in out, out
        assert f"prefix {STATE}/envs/" in out, out

        # an empty requirements file: a plain venv in the same cache
        src = _source(wheel, "")
        out = _submit_follow(ws=workspace, src=src, code=(
            "import sys; print('prefix', sys.prefix)"))
        assert f"prefix {STATE}/envs/" in out, out
    finally:
        _cleanup()
    assert not os.path.exists(STATE) and not os.path.exists("/etc/tether")
