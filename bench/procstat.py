"""What /proc says about a process: memory, CPU time, wake-ups."""
import os

TICK = os.sysconf("SC_CLK_TCK")


def status(pid):
    """Fields of /proc/PID/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kib(pid):
    return int(status(pid)["VmRSS"].split()[0])


def hwm_kib(pid):
    return int(status(pid)["VmHWM"].split()[0])


def pss_kib(pid):
    """Proportional set size (shared pages split among their users)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def tree(pid):
    """pid and every descendant (by /proc ppid links)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def wakeups(pid):
    """Voluntary context switches summed over all threads: each is a sleep
    that ended in a wake-up.  Involuntary ones (preemption by other load on
    a busy machine) are not wake-ups and are left out."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            st = status_task(pid, int(tid))
        except OSError:
            continue
        total += int(st.get("voluntary_ctxt_switches", 0))
    return total


def status_task(pid, tid):
    out = {}
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def cpu_seconds(pid, children=False):
    """utime + stime of the process (all its threads), in seconds; with
    children, also what its children that it reaped used."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICK


def pids_named(comm):
    """Live pids whose /proc/PID/comm is comm."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() == comm:
                        out.append(int(d))
            except OSError:
                pass
    return out
