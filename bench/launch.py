"""Runner-level benchmarks, no agent involved: launcher start overhead for
`true` (5) and the environment cache, hit against miss (7)."""
import os
import resource
import subprocess
import time

from stats import Result
from harness import runner as hr
from harness.common import binary

BWRAP = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc",
         "--dev", "/dev", "/bin/true"]


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(argv, env=None):
    """(wall ms, CPU ms of the child and the descendants it waited for)."""
    c0 = _children_cpu()
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    wall = (time.perf_counter() - t0) * 1000.0
    if r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (argv, r.returncode,
                                                  r.stderr.decode()[-2000:]))
    return wall, (_children_cpu() - c0) * 1000.0


def launchers(ctx, n):
    """Metric 5: the whole `tether-runner run` of a sandboxed `true` (cgroup,
    namespaces, result.json) against `bwrap --unshare-all ... true`,
    `docker run --rm IMAGE true` and `srun true`, interleaved run by run so
    that the machine's noise hits all four alike."""
    state = hr.state_dir()
    runner = binary("tether-runner")
    wall = {"sandbox": [], "bwrap": [], "docker": [], "srun": []}
    cpu = {"sandbox": [], "bwrap": []}
    docker = None
    if ctx.docker_image:
        from harness import dockerd
        env = dict(os.environ, DOCKER_API_VERSION=dockerd.api_version(),
                   DOCKER_HOST="unix://" + dockerd.SOCKET)
        docker = (["docker", "run", "--rm", "--network", "none",
                   ctx.docker_image, "true"], env)
    slurm_env = dict(os.environ, **ctx.slurm.env) if ctx.slurm else None
    for i in range(n + 1):  # round 0 warms caches and is dropped
        d = hr.make_attempt(["true"], job="L%d" % i, state=state)
        w, c = _timed([runner, "run", d])
        res = hr.result(d)
        if res["reason"] != "succeeded":
            raise RuntimeError("sandbox true: %s" % res)
        b = _timed(BWRAP)
        dk = _timed(docker[0], docker[1]) if docker else None
        sr = _timed(["srun", "-N1", "-n1", "/bin/true"], slurm_env) \
            if slurm_env else None
        if i == 0:
            continue
        wall["sandbox"].append(w)
        cpu["sandbox"].append(c)
        wall["bwrap"].append(b[0])
        cpu["bwrap"].append(b[1])
        if dk:
            wall["docker"].append(dk[0])
        if sr:
            wall["srun"].append(sr[0])
    title = "5. launcher start overhead for `true`: sandbox (whole runner)"
    out = [Result("launch_bwrap", title, "ms", wall["sandbox"], wall["bwrap"],
                  "bwrap --unshare-all", "sandbox ≤ bwrap", None),
           Result("launch_cpu_bwrap", "5. CPU time of that `true`: sandbox vs bwrap",
                  "ms", cpu["sandbox"], cpu["bwrap"], "bwrap --unshare-all",
                  "sandbox ≤ bwrap", None, "getrusage CPU time",
                  "instruction counters are not available in this VM "
                  "(`perf stat -e instructions` says <not supported>), so "
                  "CPU time (user+sys of the process tree) stands in")]
    for r in out:
        r.met = r.tether["median"] <= r.anchor["median"]
    if wall["docker"]:
        out.append(Result("launch_docker", title, "ms", wall["sandbox"],
                          wall["docker"], "docker run --rm"))
    if wall["srun"]:
        out.append(Result("launch_srun", title, "ms", wall["sandbox"],
                          wall["srun"], "srun true"))
    return out


def _env_phase(d):
    """The env phase's duration from its start and end events' times (10 µs
    steps; the end event's `duration` counts whole milliseconds, and a
    cache hit now takes less than one), and whether it was a hit."""
    start = None
    for ev in hr.events(d):
        if ev.get("type") != "phase" or ev.get("phase") != "env":
            continue
        if ev.get("state") == "start":
            start = ev.get("time")
        elif ev.get("state") == "end":
            if start is not None and ev.get("time") is not None:
                return (ev["time"] - start) * 1000.0, ev.get("cache_hit")
            return ev["duration"] * 1000.0, ev.get("cache_hit")
    raise RuntimeError("no env phase end event in %s" % d)


def env_cache(ctx, misses, hits):
    """Metric 7: the venv of examples/digits (system site packages), built
    into an empty cache (miss) and found in a warm one (hit); the env
    phase's duration as the runner reports it, and the whole runner wall
    time of a hit against a job without an environment."""
    state = hr.state_dir()
    spec = {"kind": "venv", "system_site_packages": True}
    miss, hit, run_hit, run_none = [], [], [], []
    runner = binary("tether-runner")
    for i in range(misses):
        d = hr.make_attempt(["true"], job="M%d" % i, state=state,
                            runner={"env_dir": os.path.join(state, "envs-m%d" % i)},
                            environment=spec)
        _timed([runner, "run", d])
        ms, was_hit = _env_phase(d)
        if was_hit:
            raise RuntimeError("a build into an empty cache reported a hit")
        miss.append(ms)
    warm = os.path.join(state, "envs-warm")
    d = hr.make_attempt(["true"], job="W", state=state,
                        runner={"env_dir": warm}, environment=spec)
    _timed([runner, "run", d])
    for i in range(hits):
        d = hr.make_attempt(["true"], job="H%d" % i, state=state,
                            runner={"env_dir": warm}, environment=spec)
        run_hit.append(_timed([runner, "run", d])[0])
        ms, was_hit = _env_phase(d)
        if not was_hit:
            raise RuntimeError("a warm cache reported a miss")
        hit.append(ms)
        d = hr.make_attempt(["true"], job="N%d" % i, state=state)
        run_none.append(_timed([runner, "run", d])[0])
    whole = Result("env_hit_run", "7. whole runner, cached venv vs no env",
                   "ms", run_hit, run_none, "environment none", "adds ≤ 10 ms")
    whole.met = whole.tether["median"] - whole.anchor["median"] <= 10
    return [Result("env_phase", "7. env phase, venv example: cache hit", "ms",
                   hit, miss, "cache miss (build)", "hit ≤ 10 ms",
                   lambda s: s["median"] <= 10, "runner's env phase event"),
            whole]
