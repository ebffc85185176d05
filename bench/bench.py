#!/usr/bin/python3
"""Tether benchmarks, side by side with Slurm, Docker and bubblewrap on the
same box in the same run.  Started by bench/run.sh (which builds first).

    bench.py [--quick] [--out FILE] [--only KEY,...]

Prints a markdown table and writes the same as JSON.  Every number comes
from a measurement made in this run."""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "bb"))

import jobs  # noqa: E402
import launch  # noqa: E402
import workspace_latency  # noqa: E402
import procstat  # noqa: E402
import stats  # noqa: E402
from harness import runner as hr  # noqa: E402
from harness.agent import Agent  # noqa: E402
from harness.workspace import Workspace  # noqa: E402

FULL = {"idle_hb_s": 5, "hb_s": 1, "idle_windows": 6, "submit_budget_s": 120, "b2b_n": 10, "wslat_n": 20,
        "many_budget_s": 60, "submit_n": 200, "srun_n": 50,
        "follow_lines": 100, "log_bytes": 1 << 30, "log_runs": 2,
        "logmany_jobs": 10, "logmany_bytes": 100 << 20,
        "launch_n": 30, "many_n": 1000, "env_miss": 3, "env_hit": 20,
        "load_agents": 10000, "load_jobs": 3000, "load_wait": 30,
        "load_rate": 50, "load_budget_s": 60, "load_procs": 4,
        "ssh_submit_n": 100, "ssh_log_runs": 1,
        "logmetrics_bytes": 1 << 30, "logmetrics_runs": 3}
QUICK = {"idle_hb_s": 1, "hb_s": 1, "idle_windows": 3, "submit_budget_s": 20, "b2b_n": 1, "wslat_n": 3,
         "many_budget_s": 20, "submit_n": 3, "srun_n": 3,
         "follow_lines": 5, "log_bytes": 16 << 20, "log_runs": 1,
         "logmany_jobs": 3, "logmany_bytes": 4 << 20,
         "launch_n": 2, "many_n": 10, "env_miss": 1, "env_hit": 2,
         "load_agents": 50, "load_jobs": 10, "load_wait": 2,
         "load_rate": 20, "load_budget_s": 10, "load_procs": 2,
         "ssh_submit_n": 2, "ssh_log_runs": 1,
         "logmetrics_bytes": 16 << 20, "logmetrics_runs": 1}
STEPS = ("wslat", "idle", "submit", "follow", "log", "logmetrics", "logmany", "many",
         "ssh", "launch", "env", "load")


class Ctx:
    def __init__(self, counts):
        self.counts = counts
        self.ws = None
        self.slurm = None
        self.docker_image = None
        self.why = {}

    def slurm_pid(self, name):
        if self.slurm is None:
            return None
        for p in self.slurm.procs:
            if p.argv[0] == name:
                return p.pid
        return None

    def dockerd_pid(self):
        pids = procstat.pids_named("dockerd")
        return pids[0] if pids else None


def say(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr,
          flush=True)


def start_peers(ctx, steps):
    """Slurm and Docker through the test harness; what cannot start is
    named and its anchors are left out (the table says so)."""
    if steps & {"idle", "submit", "many", "launch"}:
        from harness import slurm
        missing = slurm.missing_binaries()
        if missing:
            ctx.why["slurm"] = "Slurm not installed: %s" % ", ".join(missing)
        else:
            say("starting Slurm (munged, slurmctld, slurmd)")
            ctx.slurm = slurm.SlurmCluster().start()
    if steps & {"idle", "launch"}:
        try:
            from harness import baseimage, dockerd
            say("Docker engine and the test base image")
            dockerd.ensure_dockerd()
            ctx.docker_image = baseimage.ensure_base_image()
        except Exception as exc:  # the table names the missing anchor
            ctx.why["docker"] = "Docker not usable: %s" % exc


class SshAgent(Agent):
    """An agent whose workspace is ssh:// through a real sshd (as in
    tests/bb/test_ssh_agent.py)."""

    def __init__(self, workspace, sshd, **kw):
        self.sshd = sshd
        super().__init__(workspace, **kw)

    def write_conf(self):
        super().write_conf()
        with open(self.conf) as f:
            lines = [ln for ln in f.read().splitlines()
                     if not ln.startswith(("workspace =", "ca_file ="))]
        lines += ["workspace = " + self.sshd.url,
                  "ssh_known_hosts = " + self.sshd.known_hosts(),
                  "ssh_key = " + self.sshd.keys["ed25519"],
                  "ssh_remote_port = %d" % self.ws.plain_port]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")


def agent_settings(ctx, hb=None):
    hb = hb or ctx.counts["hb_s"]
    return {"log_level": "info", "heartbeat_interval": "%ds" % hb,
            "max_jobs": os.cpu_count(), "prefetch": 2, "kill_grace": "2s"}


def retire(ctx, ag):
    """Stop an agent (drain) and revoke it: the next one on this machine
    registers under the same machine id."""
    ag.stop()
    ctx.ws.api("DELETE", "/api/v1/agents/" + ag.name)


def _cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # all, idle + iowait


SETTLE_S = 30.0  # --quick: 3 s (a smoke run, not figures)


def settle():
    """Start a step on a quiet machine: sync what the step before wrote
    (row 4's gigabytes in writeback tripled the next job's time), then
    wait until a half second is at least 85 % idle (iowait counts as
    idle), at most SETTLE_S.  In session 9's runs the machine was always
    idle by then; row 4 ssh's slow jobs in a full run were not this
    (docs/performance.md, "Latest full run")."""
    t0 = time.monotonic()
    os.sync()
    idle = 0.0
    while time.monotonic() - t0 < SETTLE_S:
        a0, i0 = _cpu_times()
        time.sleep(0.5)
        a1, i1 = _cpu_times()
        idle = (i1 - i0) / max(1, a1 - a0)
        if idle >= 0.85:
            break
    say("  settled in %.1f s (%.0f %% idle)" % (time.monotonic() - t0,
                                               idle * 100))


def step(results, key, title, fn, *args):
    say(title)
    settle()
    hr.ensure_job_user()  # other suites on this machine may remove it
    t0 = time.monotonic()
    try:
        rows = fn(*args)
        results.extend(rows)
        for r in rows:
            say("  %s: %s" % (r.title, stats.cell(r.tether, r.unit)))
    except Exception as exc:
        traceback.print_exc()
        results.append(stats.failed(key, title, "%s: %s" % (type(exc).__name__,
                                                            str(exc)[:300])))
    say("  (%.0f s)" % (time.monotonic() - t0))


def wslat(ctx, rounds):
    """bench/workspace_latency.py: the workspace's long-polls alone, a raw
    HTTP client playing the agent (each figure includes that Python
    client's own request time)."""
    out = workspace_latency.measure(ctx.ws, rounds)
    names = {"dispatch": "submit → parked lease poll returns",
             "cancel": "cancel → parked lease poll returns",
             "log": "log append → parked `log?wait` reader returns"}
    return [stats.Result("ws_" + k, "0. workspace alone: " + names[k], "ms",
                         [x * 1000.0 for x in v]) for k, v in out.items()]


def load(ctx):
    """Metric 8: a fresh workspace under N simulated agents (bench/loadgen.py,
    its own process) long-polling and heartbeating; server peak RSS and the
    dispatch latency of jobs submitted meanwhile."""
    c = ctx.counts
    ws = Workspace(lease_ttl="10m", poll="30s", poll_max_wait="60s",
                   max_connections=str(max(512, 2 * c["load_agents"]))).start()
    try:
        cpu0 = procstat.cpu_seconds(ws.proc.pid)
        t0 = time.time()
        r = subprocess.run(
            [sys.executable, os.path.join(HERE, "loadgen.py"), "--port", str(ws.port),
             "--ca", ws.ca_file, "--admin", ws.admin_token,
             "--agents", str(c["load_agents"]), "--jobs", str(c["load_jobs"]),
             "--wait", str(c["load_wait"]), "--rate", str(c["load_rate"]),
             "--budget", str(c["load_budget_s"]), "--procs", str(c["load_procs"])],
            capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError("loadgen: " + r.stderr[-2000:])
        out = json.loads(r.stdout)
        wall = time.time() - t0
        srv_cpu = procstat.cpu_seconds(ws.proc.pid) - cpu0
        st, _, wake = ws.api("GET", "/api/v1/stats")
        if st != 200:
            wake = {}
        hwm = procstat.hwm_kib(ws.proc.pid) / 1024.0
    finally:
        ws.stop()
    gen_pct = 100.0 * out["gen_cpu_s"] / out["window_s"]
    note = ("%d agents registered in %.1f s; during the %.1f s submit window "
            "%d polls answered, load generator used %.0f %% of a core%s; "
            "server CPU over the whole run %.1f s in %.1f s; %d of %d jobs "
            "dispatched (submitting stops after %d s); %d generator errors %s; "
            "%d generator processes; lease polls woken %s"
            % (out["agents"], out["register_s"], out["window_s"],
               out["polls_in_window"], gen_pct,
               " (near a full core: the generator may be the bottleneck)"
               if gen_pct > 80 else " (not the bottleneck)",
               srv_cpu, wall, out["dispatched"], out["submitted"],
               c["load_budget_s"], out["error_count"], out["errors"][:2],
               out.get("procs", 1), wake.get("lease_wakeups", "?")))
    n = out["agents"]
    return [stats.Result("load_rss", "8. workspace peak RSS, %d agents" % n,
                         "MiB", [hwm], None, "", "≤ 400 MiB",
                         lambda s: s["median"] <= 400, "/proc VmHWM"),
            stats.Result("load_cpu", "8. workspace CPU, %d agents" % n,
                         "cores", [srv_cpu / wall], None, "", "≤ 1 core",
                         lambda s: s["median"] <= 1.0,
                         "whole run: registration, parked polls, submits"),
            stats.Result("load_submit", "8. submit request under %d agents" % n,
                         "ms", out.get("submit_ms", []), None, "",
                         "p99 ≤ 50 ms", lambda s: s["p99"] <= 50),
            stats.Result("load_dispatch", "8. dispatch under %d agents" % n, "ms",
                         out["dispatch_ms"], None, "",
                         "p50 ≤ 20 ms, p99 ≤ 100 ms, 0 errors",
                         lambda s: s["median"] <= 20 and s["p99"] <= 100
                         and out["dispatched"] == out["submitted"]
                         and out["error_count"] == 0,
                         note=note)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "results", "latest.json"))
    p.add_argument("--only", default="", help="comma-separated: " + ",".join(STEPS))
    p.add_argument("--set", action="append", default=[], metavar="COUNT=N",
                   help="override one count, e.g. load_agents=1000")
    a = p.parse_args()
    steps = set(a.only.split(",")) if a.only else set(STEPS)
    global SETTLE_S
    if a.quick:
        SETTLE_S = 3.0
    ctx = Ctx(dict(QUICK if a.quick else FULL))
    for kv in a.set:
        k, _, v = kv.partition("=")
        if k not in ctx.counts:
            p.error("--set: no count named %r" % k)
        ctx.counts[k] = type(ctx.counts[k])(float(v))
    c = ctx.counts
    t_start = time.time()
    machine = stats.machine()
    results = []
    hr.ensure_job_user()
    start_peers(ctx, steps)
    if steps & {"wslat", "idle", "submit", "follow", "log", "logmetrics",
                 "logmany", "many", "ssh"}:
        ctx.ws = Workspace(lease_ttl="10m", poll="30s", poll_max_wait="60s").start()
    if "wslat" in steps:
        step(results, "wslat", "0. workspace long-polls alone", wslat, ctx,
             c["wslat_n"])
    if steps & {"idle", "submit", "follow", "log", "logmetrics", "many"}:
        if "idle" in steps:
            say("starting an agent (https) to watch idle")
            ag = Agent(ctx.ws, **agent_settings(ctx, c["idle_hb_s"])).start()
            step(results, "idle", "1. idle agent", jobs.idle, ctx, ag,
                 c["idle_windows"], c["idle_hb_s"])
            retire(ctx, ag)
        say("starting an agent (https, sandbox)")
        ag = Agent(ctx.ws, **agent_settings(ctx)).start()
        if "submit" in steps:
            step(results, "submit_start", "2. submit → started", jobs.submit_to_start,
                 ctx, ag, c["submit_n"], "", c["submit_budget_s"], c["b2b_n"])
        if "follow" in steps:
            step(results, "follow", "3. logs -f latency", jobs.follow_latency,
                 ctx, ag, c["follow_lines"])
        if "log" in steps:
            step(results, "log_rate", "4. log throughput", jobs.log_throughput,
                 ctx, ag, c["log_bytes"], c["log_runs"])
        if "logmetrics" in steps:
            step(results, "log_rate_metrics",
                 "4m. log throughput with 10,000 metric points/s",
                 jobs.log_metrics, ctx, ag, c["logmetrics_bytes"],
                 c["logmetrics_runs"])
        if "many" in steps:
            step(results, "many_jobs", "6. many trivial jobs", jobs.many_jobs,
                 ctx, c["many_n"], c["many_budget_s"], ag)
        retire(ctx, ag)
    if "logmany" in steps:
        say("starting an agent (https, sandbox, max_jobs %d)" % c["logmany_jobs"])
        ag = Agent(ctx.ws, **dict(agent_settings(ctx),
                                  max_jobs=c["logmany_jobs"])).start()
        step(results, "logmany", "4b. logs of %d jobs at once" % c["logmany_jobs"],
             jobs.log_many, ctx, ag, c["logmany_jobs"], c["logmany_bytes"])
        retire(ctx, ag)
    if "ssh" in steps:
        from harness.sshd import Sshd
        say("starting sshd and an agent over ssh://")
        sshd = Sshd().start()
        sag = SshAgent(ctx.ws, sshd, **agent_settings(ctx)).start()
        step(results, "submit_start_ssh", "9. submit → started over ssh",
             jobs.submit_to_start, ctx, sag, c["ssh_submit_n"], " ssh",
             c["submit_budget_s"] // 2, c["b2b_n"])
        step(results, "follow_ssh", "9. logs -f latency over ssh",
             jobs.follow_latency, ctx, sag, c["follow_lines"], " ssh")
        step(results, "log_rate_ssh", "9. log throughput over ssh",
             jobs.log_throughput, ctx, sag, c["log_bytes"], c["ssh_log_runs"],
             " ssh")
        retire(ctx, sag)
        sshd.stop()
    if ctx.ws is not None:
        ctx.ws.stop()
    if "launch" in steps:
        step(results, "launch", "5. launcher overhead", launch.launchers, ctx,
             c["launch_n"])
    if "env" in steps:
        step(results, "env", "7. env cache hit vs miss", launch.env_cache, ctx,
             c["env_miss"], c["env_hit"])
    if "load" in steps:
        step(results, "load", "8. workspace under simulated agents", load, ctx)
    if ctx.slurm is not None:
        ctx.slurm.stop()
    # the agents' cgroup parents, as the test suite removes its own: a
    # machine that ran the bench for a day held hundreds per controller
    from harness.agent import remove_dead_cgroup_parents
    remove_dead_cgroup_parents(end=True)
    for k, why in ctx.why.items():
        results.append(stats.failed(k, "anchor: " + k, why))
    elapsed = time.time() - t_start
    doc = {"mode": "quick" if a.quick else "full", "counts": c,
           "command": " ".join(["bench/run.sh"] + sys.argv[1:]),
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_start)),
           "elapsed_s": round(elapsed, 1), "machine": machine,
           "git": stats.git_rev(os.path.join(HERE, "..")),
           "build_dir": os.environ.get("TETHER_BUILD_DIR", ""),
           "results": [r.to_json() for r in results]}
    stats.write_json(a.out, doc)
    m = machine
    print("\nTether bench (%s), %s, nproc %d, %s, kernel %s, load %s at start, "
          "%.0f s\n" % (doc["mode"], doc["started"], m["nproc"], m["cpu"],
                        m["kernel"], m["loadavg_at_start"], elapsed))
    print(stats.table(results))
    print("\nJSON: %s" % a.out)
    return 1 if any(r.note.startswith("NOT MEASURED") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
