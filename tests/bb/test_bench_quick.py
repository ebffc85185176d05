"""bench/run.sh --quick: the benchmark harness runs every metric end to end
(tiny counts) in under 2 minutes, prints the table and writes the JSON.
The figures themselves are not checked here (docs/performance.md)."""
import json
import os
import subprocess
import time

import pytest

from harness.common import BUILD_DIR, SOURCE_DIR, tmpdir

KEYS = {"idle_rss_slurmd", "idle_wakeups_hb", "submit_start", "submit_b2b",
        "follow", "log_rate", "log_job_time", "launch_bwrap", "launch_docker",
        "launch_srun", "many_jobs", "env_phase", "env_hit_run", "load_rss",
        "load_dispatch", "load_cpu", "load_submit",
        "logmany_rate", "logmany_stall", "logmany_follow",
        "submit_start_ssh", "follow_ssh", "log_rate_ssh", "log_rate_metrics"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the bench starts slurmd, "
                    "dockerd and sandboxed jobs: root only")
def test_bench_quick_runs_every_metric_in_two_minutes():
    out = os.path.join(tmpdir("tether-bench-"), "quick.json")
    env = dict(os.environ, BENCH_NO_BUILD="1", BENCH_BUILD_DIR=BUILD_DIR)
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(SOURCE_DIR, "bench", "run.sh"), "--quick",
                        "--out", out], capture_output=True, text=True,
                       env=env, timeout=240)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-6000:]
    assert took < 120, "bench --quick took %.0f s" % took
    assert "| metric | Tether median / p99 (n) |" in r.stdout
    with open(out) as f:
        doc = json.load(f)
    rows = {row["key"]: row for row in doc["results"]}
    assert KEYS <= set(rows), sorted(KEYS - set(rows))
    for key in KEYS:
        t = rows[key]["tether"]
        assert t and t["n"] >= 1 and t["median"] > 0, rows[key]
    assert rows["launch_bwrap"]["anchor"]["n"] >= 1
    assert doc["machine"]["nproc"] == os.cpu_count()
