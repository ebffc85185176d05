#!/usr/bin/python3
"""Where the time goes, for the metrics that miss their goal
(docs/performance.md).  perf record (cpu-clock: this VM has no hardware
counters) for CPU time, strace -c -w for the wall time spent in system
calls (fsync, waits) that a CPU profile does not see.

    TETHER_BUILD_DIR=build-bench bench/profile.py runner|agent-log|ws-load|agent-rss [OUT]

runner:    tether-runner run of `true` in the sandbox, without an environment
           and with a cached venv (20 each): perf report + strace summary.
agent-log: the agent (and the workspace) while a job writes 256 MiB to stdout.
ws-load:   the workspace under 10,000 simulated agents (bench/loadgen.py --procs 4).
agent-rss: the idle agent's resident memory by mapping (/proc/PID/smaps).
Reports go to OUT (default /tmp/tether-profile) as text files."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "bb"))

from client import Api  # noqa: E402
from harness import runner as hr  # noqa: E402
from harness.agent import Agent  # noqa: E402
from harness.common import binary  # noqa: E402
from harness.workspace import Workspace  # noqa: E402

VENV = {"kind": "venv", "system_site_packages": True}


def report(data, out, comm=None, pid=None):
    argv = ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym",
            "--stdio", "--percent-limit", "1.5", "-g", "none"]
    if comm:
        argv += ["--comm", comm]
    r = subprocess.run(argv, capture_output=True, text=True)
    with open(out, "w") as f:
        f.write(r.stdout)
    return out


def runner_profile(outdir):
    hr.ensure_job_user()
    state = hr.state_dir()
    runner = binary("tether-runner")
    warm = os.path.join(state, "envs")
    d = hr.make_attempt(["true"], job="W", state=state, environment=VENV)
    subprocess.run([runner, "run", d], check=True, capture_output=True)
    script = os.path.join(outdir, "runner-loop.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nfor d in \"$@\"; do %s run \"$d\"; done\n" % runner)
    for kind, spec in (("none", {}), ("venv-hit", {"environment": VENV})):
        dirs = [hr.make_attempt(["true"], job="%s%d" % (kind, i), state=state,
                                runner={"env_dir": warm}, **spec)
                for i in range(20)]
        data = os.path.join(outdir, "runner-%s.perf" % kind)
        subprocess.run(["perf", "record", "-q", "-F", "4000", "-g", "-o", data,
                        "--", "sh", script] + dirs[:10], check=True,
                       capture_output=True)
        report(data, os.path.join(outdir, "runner-%s.txt" % kind), "tether-runner")
        st = os.path.join(outdir, "runner-%s.strace" % kind)
        subprocess.run(["strace", "-f", "-c", "-w", "-o", st, "sh", script]
                       + dirs[10:], check=True, capture_output=True)


def agent_log_profile(outdir, nbytes=256 << 20):
    ws = Workspace(lease_ttl="10m", poll="30s", poll_max_wait="60s").start()
    ag = Agent(ws, log_level="info", heartbeat_interval="1s").start()
    api = Api(ws)
    data = os.path.join(outdir, "agent-log.perf")
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-g", "-o", data,
                             "-p", "%d,%d" % (ag.pid, ws.proc.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    t0 = time.time()
    job = api.submit({"name": "prof-log", "command": [
        "/bin/sh", "-c", "yes 'tether profile log line 0123456789 abcdefghij' "
        "| head -c %d" % nbytes]})
    j = api.wait_terminal(job, timeout=600, interval=0.05)
    el = time.time() - t0
    perf.send_signal(2)
    perf.wait(60)
    ag.stop()
    ws.stop()
    report(data, os.path.join(outdir, "agent-log-agent.txt"), "tether-agent")
    report(data, os.path.join(outdir, "agent-log-workspace.txt"))
    with open(os.path.join(outdir, "agent-log.txt"), "w") as f:
        f.write("job %s %s, %d bytes shipped in %.1f s (%.0f MB/s)\n"
                % (job, j["state"], nbytes, el, nbytes / 1e6 / el))


def ws_load_profile(outdir, agents=10000):
    ws = Workspace(lease_ttl="10m", poll="30s", poll_max_wait="60s",
                   max_connections=str(2 * agents)).start()
    data = os.path.join(outdir, "ws-load.perf")
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "1000", "-g", "-o", data,
                             "-p", str(ws.proc.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = subprocess.run([sys.executable, os.path.join(HERE, "loadgen.py"),
                        "--port", str(ws.port), "--ca", ws.ca_file,
                        "--admin", ws.admin_token, "--agents", str(agents),
                        "--jobs", "1500", "--wait", "30", "--rate", "50",
                        "--budget", "30", "--procs", "4"],
                       capture_output=True, text=True, timeout=600)
    perf.send_signal(2)
    perf.wait(60)
    ws.stop()
    report(data, os.path.join(outdir, "ws-load.txt"))
    with open(os.path.join(outdir, "ws-load.json"), "w") as f:
        f.write(r.stdout)


def agent_rss_profile(outdir):
    """The idle agent's resident pages by mapping: shared library text
    against its own (private) memory."""
    ws = Workspace(lease_ttl="10m").start()
    ag = Agent(ws, log_level="info", heartbeat_interval="2s").start()
    time.sleep(5)
    rss, priv, name = {}, {}, "[anon]"
    with open("/proc/%d/smaps" % ag.pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                name = parts[5] if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                rss[name] = rss.get(name, 0) + int(parts[1])
            elif parts[0] in ("Private_Dirty:", "Private_Clean:"):
                priv[name] = priv.get(name, 0) + int(parts[1])
    with open("/proc/%d/smaps_rollup" % ag.pid) as f:
        rollup = f.read()
    ag.stop()
    ws.stop()
    with open(os.path.join(outdir, "agent-rss.txt"), "w") as f:
        f.write(rollup + "\n")
        for n in sorted(rss, key=rss.get, reverse=True)[:15]:
            f.write("%6d kB rss %6d kB private  %s\n" % (rss[n], priv.get(n, 0), n))


def main():
    what = sys.argv[1]
    outdir = sys.argv[2] if len(sys.argv) > 2 else "/tmp/tether-profile"
    os.makedirs(outdir, exist_ok=True)
    {"runner": runner_profile, "agent-log": agent_log_profile,
     "ws-load": ws_load_profile, "agent-rss": agent_rss_profile}[what](outdir)
    print("reports in", outdir)


if __name__ == "__main__":
    main()
