"""Unknown keys get a "did you mean" hint wherever a user types them: the
job spec (in the CLI, before anything is uploaded, and at the workspace),
agent.conf and workspace.conf (file and --set).  One suggestion function
(common/util.c str_nearest) serves them all."""
import json
import os
import subprocess

from harness.common import binary, run, tmpdir


def test_jobspec_typo_in_the_cli(workspace):
    d = tmpdir()
    path = os.path.join(d, "job.json")
    with open(path, "w") as f:
        json.dump({"name": "x", "command": ["true"],
                   "enviroment": {"kind": "none"}}, f)
    env = dict(os.environ, TETHER_WORKSPACE=workspace.url,
               TETHER_TOKEN=workspace.admin_token, TETHER_CA=workspace.ca_file,
               XDG_CONFIG_HOME=os.path.join(d, "cfg"))
    r = run([binary("tether"), "submit", path], check=False, env=env)
    assert r.returncode != 0
    assert "enviroment: unknown field (did you mean environment?)" in r.stderr


def test_agent_conf_typo():
    d = tmpdir()
    conf = os.path.join(d, "agent.conf")
    with open(conf, "w") as f:
        f.write("max_job = 3\n")
    r = subprocess.run([binary("tether-agent"), "--config", conf, "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "line 1: unknown key 'max_job' (did you mean 'max_jobs'?)" in r.stderr


def test_workspace_conf_typo():
    d = os.path.join(tmpdir(), "ws")
    run([binary("tether-workspace"), "init", "--dir", d])
    with open(os.path.join(d, "workspace.conf"), "a") as f:
        f.write("max_bdy = 1M\n")
    r = subprocess.run([binary("tether-workspace"), "serve", "--dir", d,
                        "--port", "0"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert "unknown key 'max_bdy' (did you mean 'max_body'?)" in r.stderr
