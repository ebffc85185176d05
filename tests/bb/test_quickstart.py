"""README command 1 on this machine: install/quickstart.sh with fresh state.

Pass criterion: exit 0; the log shows every epoch line 1..8 in order; the
downloaded metrics.json reports test accuracy above 0.90; model.pt loads with
torch.load in a separate Python process (Debian's /usr/bin/python3)."""
import json
import os
import re
import subprocess

from harness.common import SOURCE_DIR


def test_quickstart_trains_digits_end_to_end():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
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
    # the quickstart stopped what it started
    assert subprocess.run(["pgrep", "-f", os.path.dirname(os.path.dirname(model))],
                          capture_output=True).returncode != 0
