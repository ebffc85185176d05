"""Spec fields the slurm launcher cannot honour are refused with a clear
reason, never silently dropped (issue 28; docs/launchers.md): the attempt
ends launch_failed before anything is submitted.  No cluster needed: the
refusal comes before sbatch."""
import os

import pytest

from harness import slurm
from harness.common import Proc, binary, tmpdir


@pytest.mark.parametrize("field,value,says", [
    ("network", "none", "network: 'none' cannot be honoured by the slurm launcher"),
    ("mounts", [{"source": "/etc", "target": "/data"}],
     "mounts: the slurm launcher cannot bind-mount"),
    ("resources", {"pids": 64}, "resources.pids: the slurm launcher cannot"),
])
def test_unhonoured_field_is_refused(field, value, says):
    """Scenario: a slurm-launcher attempt whose spec asks for `network:
    none` (or mounts, or a pids limit).  Pass: result.json says
    launch_failed with a message naming the field; nothing ran; no Slurm
    job was submitted (no launcher_ref)."""
    d = slurm.make_attempt(tmpdir("tether-slurm-refuse-"), "N1",
                           {"command": ["sh", "-c", "echo ran"],
                            field: value})
    runner = Proc([binary("tether-runner"), "run", d],
                  os.path.join(os.path.dirname(d), "runner.out"),
                  env={"SLURM_CONF": "/nonexistent/slurm.conf"})
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "launch_failed", res
    assert says in (res["message"] or ""), res
    assert res["exit_code"] is None, res
    state = slurm.read_json(os.path.join(d, "state.json")) \
        if os.path.exists(os.path.join(d, "state.json")) else {}
    assert not state.get("launcher_ref"), state
    log = slurm.read_bytes(os.path.join(d, "log")).decode()
    assert says in log and "ran\n" not in log, log
