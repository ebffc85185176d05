"""Inside a docker job's container: no capabilities, no_new_privs, a
non-root uid, no docker socket, and the job's memory and pids limits in its
cgroup; network none has only loopback."""
import json

from harness import dockerd
from harness import runner as hr

PROBE = r"""import json, os
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
def first(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
    return None
print("PROBE " + json.dumps({
    "capeff": status("CapEff"), "nnp": status("NoNewPrivs"),
    "uid": os.getuid(), "gid": os.getgid(),
    "sock": os.path.exists("/var/run/docker.sock") or
            os.path.exists("/run/docker.sock"),
    "mem": first("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                 "/sys/fs/cgroup/memory.max"),
    "pids": first("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
    "ifaces": sorted(os.listdir("/sys/class/net")),
    "cwd": os.getcwd(), "outputs": os.environ.get("TETHER_OUTPUTS"),
    "work_writable": os.access("/tether/work", os.W_OK),
}))
"""


def probe(d):
    for line in hr.log(d).decode(errors="replace").splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    raise AssertionError(hr.log(d)[-2000:])


def test_container_is_confined(docker_base):
    user = hr.ensure_job_user()
    d = dockerd.docker_attempt(
        ["python3", "/tether/work/probe.py"], files={"probe.py": PROBE},
        job="D-iso", spec={"resources": {"memory": "256M", "pids": 77},
                           "network": "none"})
    r = hr.run_runner(d, timeout=120)
    res = hr.result(d)
    assert res["reason"] == "succeeded", (res, r.stderr)
    p = probe(d)
    assert int(p["capeff"], 16) == 0
    assert p["nnp"] == "1"
    assert p["uid"] == user.pw_uid and p["uid"] != 0
    assert p["gid"] == user.pw_gid
    assert p["sock"] is False
    assert int(p["mem"]) == 256 << 20
    assert p["pids"] == "77"
    assert p["ifaces"] == ["lo"]
    assert p["cwd"] == "/tether/work"
    assert p["outputs"] == "/tether/outputs"
    assert p["work_writable"] is True


def test_container_labels_and_limits(docker_base):
    """The engine's view: labels, limits and hardening on the container."""
    d = dockerd.docker_attempt(
        ["sleep", "30"], job="D-lbl", attempt=3,
        spec={"resources": {"memory": "128M", "cpus": 0.5}})
    p = hr.start_runner(d)
    try:
        cid = hr.wait_until(lambda: dockerd.container_of(d), 60,
                            what="container id in state.json")
        st, info = dockerd.api("GET", "/containers/%s/json" % cid)
        assert st == 200
        labels = info["Config"]["Labels"]
        assert labels["tether.job"] == "D-lbl"
        assert labels["tether.attempt"] == "3"
        assert labels["tether.agent"] == "test-agent"
        hc = info["HostConfig"]
        assert hc["Memory"] == 128 << 20
        assert hc["NanoCpus"] == 500000000
        assert hc["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert hc["PidsLimit"] == 512  # the agent's default_pids
        assert info["Config"]["User"] != "0:0"
    finally:
        hr.write_cancel(d, grace=1)
        p.signal(10)
        hr.wait_result(d, 30)


def test_readonly_rootfs_when_asked(docker_base):
    """/var/tmp (world-writable in the image) is read-only with the runner
    setting docker_readonly_rootfs, writable without; /tmp and the job's
    directories stay writable."""
    probe = ("def w(p):\n"
             "    try:\n"
             "        open(p, 'w').write('x'); return 'rw'\n"
             "    except OSError:\n"
             "        return 'ro'\n"
             "print('RO', w('/var/tmp/x'), w('/tmp/x'), w('/tether/work/x'),"
             " w('/tether/outputs/x'))\n")
    for ro, want in ((True, b"RO ro rw rw rw\n"), (False, b"RO rw rw rw rw\n")):
        d = dockerd.docker_attempt(["python3", "/tether/work/p.py"],
                                   files={"p.py": probe}, job="D-ro%d" % ro,
                                   runner={"docker_readonly_rootfs": ro})
        r = hr.run_runner(d, timeout=120)
        assert hr.result(d)["reason"] == "succeeded", r.stderr
        assert want in hr.log(d), hr.log(d)[-500:]
