"""README command 1 on this machine: install/quickstart.sh with fresh state,
with the example's venv spec (sandbox launcher) and its docker spec (docker
launcher, image built from examples/digits/Dockerfile on the test base image
with python3-torch and python3-sklearn, built locally: no registry here).

Pass criterion: exit 0; the log shows every epoch line 1..8 in order; the
downloaded metrics.json reports test accuracy above 0.90; model.pt loads with
torch.load in a separate Python process (Debian's /usr/bin/python3); nothing
the quickstart started is left running."""
import json
import os
import re
import subprocess

import pytest

from harness.common import SOURCE_DIR

# the base image examples/digits/Dockerfile names, as `tether-agent images
# bootstrap tether-torch:bookworm --packages python3-torch python3-sklearn`
# makes it (same packages, same cached tree: python3 and pip included)
TORCH_IMAGE = "tether-torch:bookworm"


def run_quickstart(spec):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["QUICKSTART_SPEC"] = spec
    r = subprocess.run([os.path.join(SOURCE_DIR, "install", "quickstart.sh")],
                       cwd=SOURCE_DIR, env=env, capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    epochs = [int(m) for m in re.findall(r"^epoch (\d+)/8 loss", out, re.M)]
    assert epochs == list(range(1, 9)), out[-3000:]
    model = re.search(r"^model: +(\S+)", out, re.M).group(1)
    metrics = re.search(r"^metrics: +(\S+)", out, re.M).group(1)
    with open(metrics) as f:
        assert json.load(f)["accuracy"] > 0.90
    load = subprocess.run(
        ["/usr/bin/python3", "-c",
         "import sys, torch; sd = torch.load(sys.argv[1]); "
         "assert sd['0.weight'].shape == (128, 64)", model],
        capture_output=True, text=True, timeout=120)
    assert load.returncode == 0, load.stderr
    demo = os.path.dirname(os.path.dirname(model))
    assert subprocess.run(["pgrep", "-f", demo], capture_output=True).returncode != 0
    return out


def test_quickstart_trains_digits_end_to_end():
    run_quickstart("examples/digits/job-venv.json")


def test_quickstart_docker_variant(docker_engine):
    from harness import baseimage
    # debootstrap with torch once (cached under /var/cache/tether-test).
    baseimage.ensure_base_image(include=["python3", "python3-pip",
                                         "python3-torch", "python3-sklearn"],
                                tag=TORCH_IMAGE)
    out = run_quickstart("examples/digits/job-docker.json")
    assert "digits-docker" in out
