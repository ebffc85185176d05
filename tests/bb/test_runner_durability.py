"""Durability where it matters (issue 23, docs/recovery.md "Durability"):
a sandboxed `true` writes the started job's record in state.json before the
`started` event, atomically (a sandboxed job dies with its machine, so the
record has nothing to outlive), then syncs the log, the final event and
result.json in that order, and nothing else: phase writes are atomic
(rename) but not synced.  The runner's own system calls, recorded by strace,
are the evidence."""
import os
import re
import shutil
import subprocess

import pytest

from harness import runner as R
from harness.common import binary

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root"),
    pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")]

LINE = re.compile(r"^(\d+) +(\w+)\((.*)$")
RESUMED = re.compile(r"^(\d+) +<\.\.\. (\w+) resumed>(.*)$")


def calls_of(lines):
    """(pid, name, args) per call, an interrupted call's two lines joined."""
    held = {}
    for line in lines:
        m = RESUMED.match(line)
        if m:
            pid, name, rest = m.groups()
            if pid in held:
                yield pid, name, held.pop(pid) + rest
            continue
        m = LINE.match(line)
        if not m:
            continue
        pid, name, args = m.groups()
        if args.endswith("<unfinished ...>"):
            held[pid] = args[:-len("<unfinished ...>")]
        else:
            yield pid, name, args


def traced_run(tmp_path):
    d = R.make_attempt(["true"])
    out = str(tmp_path / "strace.txt")
    r = subprocess.run(["strace", "-f", "-o", out, "-s", "4096", "-e",
                        "trace=openat,rename,fsync,fdatasync,write,execve",
                        binary("tether-runner"), "run", d],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert R.result(d)["reason"] == "succeeded"
    with open(out) as f:
        calls = list(calls_of(f))
    main = calls[0][0]  # the runner itself; its children run the job
    return d, [(name, args) for pid, name, args in calls if pid == main]


def unq(args):
    return args.replace('\\"', '"')


def fd_of(args):
    m = re.search(r"= (\d+)", args)
    return m and m.group(1)


def test_syncs_only_the_job_record_and_the_end(tmp_path):
    d, calls = traced_run(tmp_path)
    fds = {}  # fd -> the path it was opened on (latest)
    trail = []  # (what, path) in order
    for name, args in calls:
        if name == "openat" and fd_of(args.split(")")[-1] + ")"):
            path = re.search(r'"([^"]*)"', args).group(1)
            fds[fd_of(args.split(")")[-1] + ")")] = path
        elif name in ("fsync", "fdatasync"):
            fd = re.match(r"(\d+)", args).group(1)
            trail.append(("sync", os.path.basename(fds.get(fd, "?"))))
        elif name == "rename":
            trail.append(("rename", os.path.basename(
                re.findall(r'"([^"]*)"', args)[1])))
        elif name == "write" and '"type":"started"' in unq(args):
            trail.append(("started", ""))
        elif name == "write" and '"type":"final"' in unq(args):
            trail.append(("final", ""))
    syncs = [t for t in trail if t[0] == "sync"]
    # before: 18 (state.json synced at every phase, twice each), then 6
    # (the sandbox's record synced: file and directory)
    assert len(syncs) == 4, trail
    attempt = os.path.basename(d)
    start = trail.index(("started", ""))
    # the record is written before `started`, as every state.json: atomic
    i = max(k for k in range(start) if trail[k] == ("rename", "state.json"))
    first = trail.index(("rename", "state.json"))
    assert first < i, trail
    assert not [t for t in trail[:start] if t[0] == "sync"], trail
    with open(os.path.join(d, "events")) as f:
        assert '"type":"started"' in f.read()
    # the end: log, final event, events, result.json (file, rename, dir)
    fin = trail.index(("final", ""))
    assert trail[fin - 1] == ("sync", "log"), trail
    assert trail[fin + 1] == ("sync", "events"), trail
    r = trail.index(("rename", "result.json"))
    assert trail[r - 1][1].startswith("result.json.tmp"), trail
    assert trail[r + 1] == ("sync", attempt), trail
    # `done` after result.json: not synced
    assert trail[-1] == ("rename", "state.json"), trail


def test_state_json_written_at_start_run_record_and_done(tmp_path):
    """The source and env phases do not rewrite state.json (a runner that
    finds it after a crash starts afresh from either): four writes, each a
    new file and a rename (before: six, the start's `source` written
    twice and `env` once more)."""
    d, calls = traced_run(tmp_path)
    renames = [os.path.basename(re.findall(r'"([^"]*)"', a)[1])
               for name, a in calls if name == "rename"]
    assert renames.count("state.json") == 4, renames
    assert R.state(d)["phase"] == "done"

