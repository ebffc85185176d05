"""A probe a job runs to try every way out it should not have (issue 13,
item 10).  It prints one line `PROBE {json}`; tests assert on the fields.

Environment it reads: P_CRED (the agent's credential file), P_STATE (the
agent's state dir), P_SOCKS (':'-separated unix sockets of the host, e.g.
the Docker socket), P_PIDS (':'-separated host pids: the agent, other
jobs' processes).  Nothing is written to cgroup files: opening one for
writing is already the escape."""
import glob
import json
import os
import socket

r = {}
status = open("/proc/self/status").read().splitlines()
field = {ln.split(":")[0]: ln.split(":", 1)[1].strip() for ln in status}
r["nnp"] = field.get("NoNewPrivs")
r["capeff"] = field.get("CapEff")
r["capprm"] = field.get("CapPrm")
r["uid"], r["euid"] = os.getuid(), os.geteuid()
r["fds"] = sorted(os.listdir("/proc/self/fd"), key=int)


def can_read(p):
    try:
        with open(p, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False


def listing(p):
    try:
        return sorted(os.listdir(p))
    except OSError:
        return None


state = os.environ.get("P_STATE", "/nonexistent")
r["cred"] = can_read(os.environ.get("P_CRED", "/nonexistent"))
r["statedir"] = listing(state)  # None, or what a mask shows
r["agentdb"] = can_read(os.path.join(state, "agent.db"))

socks = {}
for p in os.environ.get("P_SOCKS", "").split(":") + [
        "/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"]:
    if not p or p in socks:
        continue
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(p)
        socks[p] = True
    except OSError:
        socks[p] = False
    finally:
        s.close()
r["socks"] = socks

cands = set(glob.glob("/sys/fs/cgroup/*/release_agent") +
            glob.glob("/sys/fs/cgroup/release_agent"))
KNOBS = ("cgroup.procs", "tasks", "notify_on_release", "memory.limit_in_bytes",
         "memory.max", "pids.max", "cpu.cfs_quota_us", "cpu.max",
         "devices.allow", "cgroup.subtree_control")
try:
    for line in open("/proc/self/cgroup"):
        _, ctrls, path = line.strip().split(":", 2)
        for c in (ctrls.split(",") if ctrls else ["unified"]):
            c = c.replace("name=", "")
            for base in ("/sys/fs/cgroup/%s%s" % (c, path), "/sys/fs/cgroup/%s" % c,
                         "/sys/fs/cgroup%s" % path):
                for k in KNOBS:
                    cands.add(os.path.join(base, k))
except OSError:
    pass
writable = []
for p in sorted(cands):
    try:
        fd = os.open(p, os.O_WRONLY)
    except OSError:
        continue
    os.close(fd)
    writable.append(p)
r["cgroup_writable"] = writable
r["cgroup_checked"] = len([p for p in cands if os.path.exists(p)])

sig = {}
for p in os.environ.get("P_PIDS", "").split(":"):
    if not p:
        continue
    try:
        os.kill(int(p), 0)
        sig[p] = "ok"
    except ProcessLookupError:
        sig[p] = "ESRCH"
    except PermissionError:
        sig[p] = "EPERM"
r["signal"] = sig
print("PROBE " + json.dumps(r), flush=True)
