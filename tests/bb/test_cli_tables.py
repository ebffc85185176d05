"""`tether jobs` and `tether agents` print tables whose column widths come
from their contents: a long reason (source_failed, launch_failed) or a long
name keeps every row in line under its header."""
import os
import subprocess

from harness.common import binary, tmpdir


def tether(ws, *args):
    e = dict(os.environ, TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
             TETHER_CA=ws.ca_file, XDG_CONFIG_HOME=os.path.join(tmpdir(), "c"))
    r = subprocess.run([binary("tether"), *args], env=e, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def check_aligned(text, header, rows):
    """Every row's cells start where the header's columns start."""
    lines = text.splitlines()
    assert lines[0].split() == header, lines[0]
    starts = [lines[0].index(h) for h in header]
    assert starts == sorted(starts)
    got = {}
    for ln in lines[1:]:
        cells = []
        for i, s in enumerate(starts):
            if s >= len(ln) and i + 1 == len(starts):
                cells.append("")  # an empty last cell: no trailing blanks
                continue
            assert s == 0 or ln[s - 1] == " ", (ln, header[i])
            end = starts[i + 1] if i + 1 < len(starts) else len(ln)
            cells.append(ln[s:end].strip())
            assert ln[s] != " ", (ln, header[i])
        got[cells[0]] = cells
    for key, expected in rows.items():
        assert got[key] == expected, (got[key], expected)


def test_jobs_table_widths_come_from_contents(workspace):
    ws = workspace
    sec = ws.register("node-with-a-rather-long-name-1")
    long_name = "a-job-name-that-is-longer-than-twenty-four-characters"
    ids = {}
    for reason in ("source_failed", "launch_failed", "succeeded"):
        ids[reason] = ws.submit({"name": long_name if reason == "succeeded"
                                 else reason, "command": ["true"]})
    got = ws.lease(sec, queue_room=3)["jobs"]
    assert len(got) == 3
    for reason, j in ids.items():
        assert ws.finish(sec, j, 1, reason=reason)[0] == 200
    q = ws.submit({"name": "q", "command": ["true"],
                   "resources": {"cpus": 64}})  # stays queued
    out = tether(ws, "jobs")
    agent = "node-with-a-rather-long-name-1"
    check_aligned(out, ["ID", "NAME", "STATE", "ATTEMPT", "AGENT"], {
        str(ids["source_failed"]): [str(ids["source_failed"]), "source_failed",
                                    "source_failed", "1", agent],
        str(ids["launch_failed"]): [str(ids["launch_failed"]), "launch_failed",
                                    "launch_failed", "1", agent],
        str(ids["succeeded"]): [str(ids["succeeded"]), long_name, "succeeded",
                                "1", agent],
        str(q): [str(q), "q", "queued", "0", "-"],
    })


def test_agents_table_widths_come_from_contents(workspace):
    ws = workspace
    ws.register("n1")
    ws.register("an-agent-name-much-longer-than-twenty", labels=["gpu", "zone-a"])
    out = tether(ws, "agents")
    check_aligned(out, ["NAME", "STATE", "CPUS", "MEMORY", "RUNNING", "LABELS"], {
        "n1": ["n1", "online", "2", "4.0", "0", ""],
        "an-agent-name-much-longer-than-twenty":
            ["an-agent-name-much-longer-than-twenty", "online", "2", "4.0", "0",
             "gpu,zone-a"],
    })
