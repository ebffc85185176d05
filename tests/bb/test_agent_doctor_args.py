"""`tether-agent [options] doctor` dispatches to doctor with those options,
like `tether-agent doctor [options]`."""
import json
import os
import subprocess

from harness.common import binary


def _doctor(*argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    r = subprocess.run([binary("tether-agent"), *argv], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), (argv, r.returncode, r.stderr)
    return {c["check"]: c for c in json.loads(r.stdout)["checks"]}


def test_options_before_doctor(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text("state_dir = %s\n" % (tmp_path / "no-such-state"))
    after = _doctor("doctor", "--config", str(conf), "--json")
    before = _doctor("--config", str(conf), "doctor", "--json")
    assert before["config"]["message"] == after["config"]["message"] \
        == str(conf)
    assert before["state-dir"] == after["state-dir"]
    assert "no-such-state" in before["state-dir"]["message"]
    # --state-dir (a --set in disguise) and the --opt=value form too
    other = tmp_path / "other-state"
    for argv in (("--config", str(conf), "--state-dir", str(other)),
                 ("--config=%s" % conf, "--state-dir=%s" % other),
                 ("-c", str(conf), "-s", "state_dir=%s" % other)):
        got = _doctor(*argv, "doctor", "--json")
        assert "other-state" in got["state-dir"]["message"], (argv, got)
