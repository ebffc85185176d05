"""Benchmarks through a real agent attached to a real workspace: idle cost
(1), submit to start (2), log follow latency (3), log throughput (4) and
many trivial jobs (6).  Metrics 2-4 run again over ssh:// (9)."""
import os
import subprocess
import threading
import time

import procstat
from client import TERMINAL, Api, head_tail, line_stamps, stamps
from stats import Result, summary
from harness.common import binary

VENV = {"kind": "venv", "system_site_packages": True}
LINE = ("tether bench log line 0123456789 abcdefghijklmnopqrstuvwxyz "
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789")


def _sfx(tag):
    """Key suffix of a tagged row: " ssh" -> "_ssh"."""
    return tag.replace(" ", "_")


def mib(kib):
    return kib / 1024.0


def idle(ctx, agent, windows, hb_s):
    """Metric 1: RSS and wake-ups of an idle, registered agent holding its
    lease long-poll, next to the Slurm node daemon and the Docker engine."""
    slurmd = ctx.slurm_pid("slurmd")
    dockerd = ctx.dockerd_pid()
    time.sleep(2 * hb_s)  # past registration and the first polls
    peers = {"agent": agent.pid, "slurmd": slurmd, "dockerd": dockerd}
    rss = {k: [] for k in peers}
    wake = {k: [] for k in peers}
    before = {k: procstat.wakeups(p) for k, p in peers.items() if p}
    for _ in range(windows):
        time.sleep(hb_s)  # one heartbeat period: the measured window
        for k, p in peers.items():
            if not p:
                continue
            now = procstat.wakeups(p)
            wake[k].append(now - before[k])
            before[k] = now
            rss[k].append(mib(procstat.rss_kib(p)))
    pss = procstat.pss_kib(agent.pid)
    per_min = {k: [w * 60.0 / hb_s for w in v] for k, v in wake.items()}
    note = ("%d windows of one heartbeat_interval (%gs) each; agent PSS %.2f MiB"
            % (windows, hb_s, mib(pss or 0)))
    out = [Result("idle_rss_slurmd", "1. agent idle RSS (vs idle slurmd)", "MiB",
                  rss["agent"], rss["slurmd"], "slurmd", "≤ 4 MiB",
                  lambda s: s["p99"] <= 4.0, "/proc VmRSS", note),
           Result("idle_rss_dockerd", "1. agent idle RSS (vs idle dockerd)", "MiB",
                  rss["agent"], rss["dockerd"], "dockerd", "≤ 4 MiB",
                  lambda s: s["p99"] <= 4.0, "/proc VmRSS"),
           Result("idle_wakeups_hb", "1. agent idle wake-ups per heartbeat",
                  "", wake["agent"], None, "", "≤ 1",
                  lambda s: s["median"] <= 1.0,
                  "voluntary context switches, all threads"),
           Result("idle_wakeups_min", "1. idle wake-ups per minute (vs slurmd)",
                  "/min", per_min["agent"], per_min["slurmd"], "slurmd", "",
                  None, "voluntary context switches, all threads"),
           Result("idle_wakeups_min_docker",
                  "1. idle wake-ups per minute (vs dockerd)", "/min",
                  per_min["agent"], per_min["dockerd"], "dockerd", "", None,
                  "voluntary context switches, all threads",
                  "dockerd is shared with other users of this machine")]
    return out


def _job_log(agent, job):
    return os.path.join(agent.attempt_dir(job), "log")


def _last_seen(api, name):
    st, b = api.call("GET", "/api/v1/agents")
    for a in b["agents"]:
        if a["name"] == name:
            return a["last_seen"] or 0.0
    return 0.0


def _wait_parked(api, agent, since, timeout=120):
    """Until the agent's lease poll that arrived after `since` (workspace
    clock = this box's clock) is held: the agent is waiting for work."""
    deadline = time.monotonic() + timeout
    while _last_seen(api, agent.name) <= since:
        if time.monotonic() > deadline:
            raise TimeoutError("the agent did not poll again")
        time.sleep(0.01)
    time.sleep(0.01)  # the poll reaches its wait after last_seen is stored


def _one_start(api, agent, spec):
    t0 = time.time()
    job = api.submit(spec)
    j = api.wait_terminal(job)
    if j["state"] != "succeeded":
        raise RuntimeError("job %s: %s" % (job, j))
    with open(_job_log(agent, job), "rb") as f:
        st = stamps(f.read())
    return (st[0] - t0) * 1000.0, time.time()


def submit_to_start(ctx, agent, n, tag="", budget_s=150, back_to_back=10):
    """Metric 2: submit -> the job's process runs, cached venv, sandbox; the
    job is `date +%s.%N`, so the start time is the job's own clock reading.
    Each submit waits until the agent holds its lease poll again (the
    workspace's last_seen moved past the previous job's end): the idle
    agent the goal is about.  A few back-to-back submits (right after the
    previous job ended) show what a busy user sees.  At most budget_s."""
    api = Api(ctx.ws)
    spec = {"name": "bench-start", "command": ["/bin/date", "+%s.%N"],
            "environment": VENV, "launcher": "sandbox"}
    warm = api.submit(spec)
    j = api.wait_terminal(warm, timeout=300)
    if j["state"] != "succeeded":
        raise RuntimeError("warm-up job %s: %s\n%s" % (warm, j, agent.output()[-3000:]))
    parked, b2b = [], []
    end = time.time()
    stop = time.monotonic() + budget_s
    for _ in range(back_to_back):
        ms, end = _one_start(api, agent, spec)
        b2b.append(ms)
    while len(parked) < n and time.monotonic() < stop:
        _wait_parked(api, agent, end)
        ms, end = _one_start(api, agent, spec)
        parked.append(ms)
    api.close()
    anchor = []
    if tag == "" and ctx.slurm is not None:
        env = dict(os.environ, **ctx.slurm.env)
        for _ in range(ctx.counts["srun_n"]):
            t0 = time.time()
            r = subprocess.run(["srun", "-N1", "-n1", "/bin/date", "+%s.%N"],
                               capture_output=True, env=env, timeout=60)
            anchor.append((stamps(r.stdout)[0] - t0) * 1000.0)
    capped = "" if len(parked) >= n else \
        "stopped at the %d s budget after %d of %d runs" % (budget_s, len(parked), n)
    return [Result("submit_start" + _sfx(tag), "2%s. submit → job process started "
                   "(cached venv, sandbox, agent polling)" % tag, "ms", parked,
                   anchor or None, "srun" if anchor else "",
                   "p50 ≤ 10 ms, p99 ≤ 50 ms",
                   lambda s: s["median"] <= 10 and s["p99"] <= 50, note=capped),
            Result("submit_b2b" + _sfx(tag), "2%s. same, submitted right as the "
                   "previous job ended" % tag, "ms", b2b, None, "",
                   "p50 ≤ 10 ms, p99 ≤ 50 ms",
                   lambda s: s["median"] <= 10 and s["p99"] <= 50,
                   note="heartbeat_interval = %s s" % ctx.counts["hb_s"])]


def follow_latency(ctx, agent, lines, tag=""):
    """Metric 3: a job prints a time stamp every 100 ms; `tether logs -f`
    (the real CLI) reads the log at the workspace; latency = arrival at the
    reader - the stamp."""
    api = Api(ctx.ws)
    script = ("sleep 1; i=0; while [ $i -lt %d ]; do /bin/date +%%s.%%N; "
              "sleep 0.1; i=$((i+1)); done" % (lines + 2))
    job = api.submit({"name": "bench-follow", "command": ["/bin/sh", "-c", script]})
    env = dict(os.environ, TETHER_WORKSPACE=ctx.ws.url,
               TETHER_TOKEN=ctx.ws.admin_token, TETHER_CA=ctx.ws.ca_file)
    reader = subprocess.Popen([binary("tether"), "logs", str(job), "-f"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=env)
    got = []

    def read():
        for line in reader.stdout:
            got.append((time.time(), line))
    th = threading.Thread(target=read)
    th.start()
    j = api.wait_terminal(job, timeout=60 + lines)
    reader.wait(30)
    th.join(30)
    api.close()
    if j["state"] != "succeeded":
        raise RuntimeError("follow job %s: %s" % (job, j))
    samples = []
    for t, line in got:
        st = stamps(line)
        if st:
            samples.append((t - st[0]) * 1000.0)
    samples = samples[2:]  # the first lines may predate the reader
    if not samples:
        raise RuntimeError("the logs -f reader got no stamped lines")
    return [Result("follow" + _sfx(tag), "3%s. print → readable by `logs -f`" % tag,
                   "ms", samples, None, "", "p50 ≤ 50 ms, p99 ≤ 200 ms",
                   lambda s: s["median"] <= 50 and s["p99"] <= 200)]


def _stream_job(api, agent, nbytes, to_file):
    # Each job starts with nothing dirty: the last job's gigabytes (its log
    # on the node and at the workspace, or its file) being written back
    # slowed the next job by up to 3x on this disk, whichever kind it was.
    os.sync()
    dest = " > /tether/work/bench.out" if to_file else ""
    script = ("/bin/date +%%s.%%N; yes '%s' | head -c %d%s; echo; "
              "/bin/date +%%s.%%N; rm -f /tether/work/bench.out"
              % (LINE, nbytes, dest))
    job = api.submit({"name": "bench-log", "command": ["/bin/sh", "-c", script]})
    shipped = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        j = api.job(job)
        att = j["attempts"][-1] if j.get("attempts") else None
        if j["state"] in TERMINAL and att:
            local = os.path.getsize(_job_log(agent, job))
            if att["log_length"] >= local:
                shipped = time.time()
                break
        time.sleep(0.05)
    if j["state"] != "succeeded" or shipped is None:
        raise RuntimeError("log job %s: %s" % (job, j))
    head, tail, _ = head_tail(_job_log(agent, job))
    start, end = stamps(head)[0], stamps(tail)[-1]
    return start, end, shipped


def log_throughput(ctx, agent, nbytes, runs, tag=""):
    """Metric 4: a job writes nbytes to stdout; MB/s until the workspace has
    every byte, and the job's own run time against the same job writing to
    a file in its work directory (alternating runs)."""
    api = Api(ctx.ws)
    rate, t_out, t_file, lag = [], [], [], []
    for _ in range(runs):
        s, e, shipped = _stream_job(api, agent, nbytes, False)
        rate.append(nbytes / 1e6 / (shipped - s))
        t_out.append((e - s) * 1000.0)
        lag.append((shipped - e) * 1000.0)
        fs, fe, _ = _stream_job(api, agent, nbytes, True)
        t_file.append((fe - fs) * 1000.0)
    api.close()
    out_s, file_s = summary(t_out), summary(t_file)
    slow = [(a / b - 1.0) * 100.0 for a, b in zip(t_out, t_file)]
    size = "%d MiB" % (nbytes >> 20)
    return [Result("log_rate" + _sfx(tag), "4%s. log shipped, %s to stdout" % (tag, size),
                   "MB/s", rate, None, "", "≥ 200 MB/s",
                   lambda s: s["median"] >= 200, "wall clock",
                   "shipping ends %.0f ms (median) after the job ends"
                   % summary(lag)["median"], higher_is_better=True),
            Result("log_job_time" + _sfx(tag), "4%s. job run time, %s to stdout"
                   % (tag, size), "ms", out_s, file_s, "same job to a file",
                   "slowed ≤ 5 %",
                   lambda s: out_s["median"] <= file_s["median"] * 1.05,
                   note="slowdown per pair: median %.1f %%"
                   % summary(slow)["median"])]


# Issue 26: 10,000 TETHER_METRIC points a second (100 lines every 10 ms,
# one write each) into the same stdout as the log bytes.
METRIC_PRINTER = r"""
import sys, time
w, t, i = sys.stdout.write, time.monotonic(), 0
while True:
    w("".join("TETHER_METRIC loss=%d.5 acc=0.%d step=%d\n" % (i + k, i + k, i + k)
              for k in range(50)))
    sys.stdout.flush()
    i += 50
    t += 0.01
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)
"""


def _metrics_job(api, agent, nbytes, with_metrics):
    """A run of row 4's job (nbytes of lines to stdout), with the metric
    printer beside it or not: (MB/s until the workspace has every byte,
    metric points the workspace got)."""
    bg = ("/usr/bin/python3 -c '%s' & " % METRIC_PRINTER.replace("'", "'\\''")
          if with_metrics else "")
    script = ("/bin/date +%%s.%%N; %syes '%s' | head -c %d; echo; "
              "/bin/date +%%s.%%N; %s"
              % (bg, LINE, nbytes, "kill $!; wait" if with_metrics else ""))
    job = api.submit({"name": "bench-logmetrics",
                      "command": ["/bin/sh", "-c", script]})
    deadline = time.monotonic() + 600
    shipped = None
    while time.monotonic() < deadline:
        j = api.job(job)
        att = j["attempts"][-1] if j.get("attempts") else None
        if j["state"] in TERMINAL and att:
            if att["log_length"] >= os.path.getsize(_job_log(agent, job)):
                shipped = time.time()
                break
        time.sleep(0.05)
    if shipped is None:
        raise RuntimeError("log job %s: %s" % (job, j))
    head, tail, _ = head_tail(_job_log(agent, job))
    start, end = stamps(head)[0], stamps(tail)[-1]
    st, b = api.call("GET", "/api/v1/jobs/%s/metrics" % job)
    points = sum(ser.get("count", 0) for ser in b.get("series", ()))
    dropped = b.get("dropped", 0)
    return nbytes / 1e6 / (shipped - start), points, dropped, end - start


def log_metrics(ctx, agent, nbytes, runs):
    """Issue 26: row 4's log throughput with 10,000 metric points a second
    printed beside the log bytes against without, alternating runs."""
    api = Api(ctx.ws)
    with_m, without, pts, drops = [], [], [], []
    for _ in range(runs):
        r, _, _, _ = _metrics_job(api, agent, nbytes, False)
        without.append(r)
        r, n, dropped, secs = _metrics_job(api, agent, nbytes, True)
        with_m.append(r)
        pts.append(n / secs)
        drops.append(dropped)
    api.close()
    base = summary(without)["median"]
    return [Result("log_rate_metrics", "4m. log shipped, %d MiB to stdout, "
                   "with 10,000 metric points/s" % (nbytes >> 20), "MB/s",
                   with_m, without, "same job without metrics",
                   "within 10 %", lambda s: s["median"] >= 0.9 * base,
                   note="metric points stored per second of the job's run "
                   "time: median %.0f; points over the rate cap: median %d"
                   % (summary(pts)["median"], summary(drops)["median"]),
                   higher_is_better=True)]


def log_many(ctx, agent, njobs, nbytes, chunk=1 << 20):
    """Issue 22: njobs jobs at once on one agent (max_jobs = njobs), each
    writing nbytes to stdout in 1 MiB bursts with a `date +%s.%N` line
    before each; one `tether logs -f` (the real CLI) per job reads along.
    Aggregate MB/s from the first job's first line until the workspace has
    every byte; each reader's longest gap between two reads that got bytes
    (first to last byte: its stalls); and the latency of each stamp line
    (arrival at the reader - the stamp)."""
    api = Api(ctx.ws)
    script = ("i=0; while [ $i -lt %d ]; do /bin/date +%%s.%%N; yes '%s' | "
              "head -c %d; echo; i=$((i+1)); done; /bin/date +%%s.%%N"
              % (max(1, nbytes // chunk), LINE, chunk))
    env = dict(os.environ, TETHER_WORKSPACE=ctx.ws.url,
               TETHER_TOKEN=ctx.ws.admin_token, TETHER_CA=ctx.ws.ca_file)
    ids = [api.submit({"name": "bench-logmany", "command": ["/bin/sh", "-c", script]})
           for _ in range(njobs)]
    readers = [subprocess.Popen([binary("tether"), "logs", str(j), "-f"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=env) for j in ids]
    lat, gaps = [], []

    def read(p):
        fd, tail, last, gap = p.stdout.fileno(), b"", None, 0.0
        while True:
            data = os.read(fd, 1 << 20)
            if not data:
                break
            t = time.time()
            if last is not None:
                gap = max(gap, t - last)
            last = t
            # a stamp cut by the read boundary is matched once, whole
            buf = tail + data
            cut = buf.rfind(b"\n")
            for st in line_stamps(buf[:cut + 1]):
                lat.append((t - st) * 1000.0)
            tail = buf[cut + 1:][-256:]
        gaps.append(gap * 1000.0)
    ths = [threading.Thread(target=read, args=(p,)) for p in readers]
    for th in ths:
        th.start()
    shipped = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        js = [api.job(j) for j in ids]
        if all(j["state"] in TERMINAL and j.get("attempts") for j in js):
            if all(j["attempts"][-1]["log_length"]
                   >= os.path.getsize(_job_log(agent, j["id"])) for j in js):
                shipped = time.time()
                break
        time.sleep(0.05)
    for p in readers:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
    for th in ths:
        th.join(30)
    api.close()
    bad = [j for j in js if j["state"] != "succeeded"]
    if bad or shipped is None:
        raise RuntimeError("log jobs: %s" % [(j["id"], j["state"]) for j in bad or js])
    total, first = 0, None
    for j in ids:
        head, _, size = head_tail(_job_log(agent, j))
        total += size
        st = stamps(head)[0]
        first = st if first is None else min(first, st)
    rate = total / 1e6 / (shipped - first)
    size = "%d × %d MiB" % (njobs, nbytes >> 20)
    return [Result("logmany_rate", "4b. log shipped, %s at once (one agent)" % size,
                   "MB/s", [rate], None, "", "≥ 200 MB/s",
                   lambda s: s["median"] >= 200, "wall clock",
                   "first stamp to the last byte at the workspace; "
                   "max_jobs %d" % njobs, higher_is_better=True),
            Result("logmany_stall", "4b. longest `logs -f` stall, %s" % size, "ms",
                   gaps, None, "", "none > 100 ms",
                   lambda s: s["max"] <= 100,
                   "per reader: longest gap between two reads with bytes",
                   "%d readers, one per job" % len(gaps)),
            Result("logmany_follow", "4b. line → `logs -f` under that load", "ms",
                   lat, None, "", "p50 ≤ 10 ms, p99 ≤ 50 ms",
                   lambda s: s["median"] <= 10 and s["p99"] <= 50,
                   "stamp line → read by the CLI's reader")]


def _done_rate(n, t0, t_sub, count, budget_s):
    """Poll count() (jobs finished) until n or the budget; (rate, done, s)."""
    deadline = t0 + budget_s
    done = 0
    while time.time() < deadline:
        done = count()
        if done >= n:
            break
        time.sleep(0.2)
    el = time.time() - t0
    return done / el, done, el


def _cancel_rest(api, name):
    """Cancel what the budget left queued or running (later steps need an
    idle agent) and wait until every one has ended."""
    st, b = api.call("GET", "/api/v1/jobs?name=%s&limit=10000" % name)
    for j in b["jobs"]:
        if j["state"] not in TERMINAL:
            api.call("POST", "/api/v1/jobs/%s/cancel" % j["id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st, b = api.call("GET", "/api/v1/jobs?name=%s&limit=10000" % name)
        if all(j["state"] in TERMINAL for j in b["jobs"]):
            return
        time.sleep(0.2)


def _many_cpu(ctx, ag):
    """(agent with its reaped children, workspace) CPU seconds so far."""
    if ag is None or ctx.ws.proc is None:
        return None
    return (procstat.cpu_seconds(ag.pid, children=True),
            procstat.cpu_seconds(ctx.ws.proc.pid))


def many_jobs(ctx, n, budget_s, ag=None):
    """Metric 6: n trivial jobs submitted at once through workspace -> agent
    -> result (max_jobs = cores), next to n `sbatch --wrap true`; jobs
    finished per second from the first submit, over at most budget_s each.
    The note gives the CPU the agent (with the children it reaps) and the
    workspace used per job."""
    api = Api(ctx.ws)
    name = "bench-many-%d" % int(time.time())
    cpu0 = _many_cpu(ctx, ag)
    t0 = time.time()
    for _ in range(n):
        api.submit({"name": name, "command": ["true"]})
    t_sub = time.time() - t0
    bad = []

    def count():
        st, b = api.call("GET", "/api/v1/jobs?name=%s&limit=10000" % name)
        ended = [j for j in b["jobs"] if j["state"] in TERMINAL]
        bad[:] = [j for j in ended if j["state"] != "succeeded"]
        return len(ended)
    rate, done, el = _done_rate(n, t0, t_sub, count, budget_s)
    cpu1 = _many_cpu(ctx, ag)
    _cancel_rest(api, name)
    note = "%d of %d finished in %.0f s (submitting took %.1f s)" % (done, n, el, t_sub)
    if cpu0 and done:
        note += "; CPU per job: agent %.2f ms, workspace %.2f ms" % tuple(
            1000.0 * (b - a) / done for a, b in zip(cpu0, cpu1))
    if bad:  # counted (they ended), and shown
        st, j = api.call("GET", "/api/v1/jobs/%s" % bad[0]["id"])
        note += "; %d did not succeed, e.g. job %s %s: %s" % (
            len(bad), bad[0]["id"], bad[0]["state"],
            (j.get("attempts") or [{}])[-1].get("message"))
    anchor = None
    if ctx.slurm is not None:
        env = dict(os.environ, **ctx.slurm.env)
        ids = set()
        t0 = time.time()
        for _ in range(n):
            r = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null",
                                "--wrap", "true"], capture_output=True,
                               text=True, env=env, timeout=60, check=True)
            ids.add(r.stdout.strip().split(";")[0])
            if time.time() - t0 > budget_s:
                break
        t_sub = time.time() - t0
        submitted = len(ids)

        def s_count():
            r = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True,
                               text=True, env=env, timeout=60)
            return submitted - len(ids & set(r.stdout.split()))
        s_rate, s_done, s_el = _done_rate(n, t0, t_sub, s_count, budget_s)
        if ids:  # over the budget: the next steps need an empty cluster
            subprocess.run(["scancel"] + sorted(ids), env=env, timeout=60)
        anchor = [s_rate]
        api.close()
        note += "; sbatch: %d of %d finished in %.0f s (submitting took %.1f s)" \
            % (s_done, n, s_el, t_sub)
    return [Result("many_jobs", "6. %d trivial jobs, workspace → agent → "
                   "result (max_jobs = %d)" % (n, os.cpu_count()), "jobs/s",
                   [rate], anchor, "sbatch --wrap true" if anchor else "",
                   "≥ 100 jobs/s", lambda s: s["median"] >= 100, note=note,
                   higher_is_better=True)]
