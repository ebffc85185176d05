"""Numbers and tables of the bench: every figure comes from samples taken in
this run; nothing here is a constant result."""
import json
import math
import os
import platform
import statistics
import subprocess


def summary(samples):
    """{"median", "p99", "n", "min", "max"} of a list of numbers (None if empty).
    p99 is the nearest-rank 99th percentile (with few samples: the max)."""
    if not samples:
        return None
    s = sorted(samples)
    rank = max(1, math.ceil(0.99 * len(s)))
    return {"median": statistics.median(s), "p99": s[rank - 1], "n": len(s),
            "min": s[0], "max": s[-1]}


class Result:
    """One row: Tether's samples, an anchor's samples (or none), a goal."""

    def __init__(self, key, title, unit, tether, anchor=None, anchor_name="",
                 goal="", check=None, method="wall clock", note="",
                 higher_is_better=False):
        self.key, self.title, self.unit = key, title, unit
        self.tether = summary(tether) if isinstance(tether, list) else tether
        self.anchor = summary(anchor) if isinstance(anchor, list) else anchor
        self.anchor_name = anchor_name
        self.goal, self.method, self.note = goal, method, note
        self.higher_is_better = higher_is_better
        self.met = None
        if check is not None and self.tether is not None:
            self.met = bool(check(self.tether))

    @property
    def ratio(self):
        """Tether's median over the anchor's (how many times the anchor)."""
        if not self.tether or not self.anchor or not self.anchor["median"]:
            return None
        return self.tether["median"] / self.anchor["median"]

    def to_json(self):
        return {"key": self.key, "metric": self.title, "unit": self.unit,
                "tether": self.tether, "anchor_name": self.anchor_name,
                "anchor": self.anchor, "ratio": self.ratio, "goal": self.goal,
                "goal_met": self.met, "method": self.method, "note": self.note}


def failed(key, title, why):
    """A row for a benchmark that could not run (the reason is shown)."""
    r = Result(key, title, "", None, note="NOT MEASURED: " + why)
    r.met = False
    return r


def fmt(v, unit):
    if v is None:
        return "-"
    if abs(v) >= 100 or v == int(v):
        s = "%.0f" % v
    elif abs(v) >= 10:
        s = "%.1f" % v
    else:
        s = "%.2f" % v
    return "%s %s" % (s, unit) if unit else s


def cell(st, unit):
    if not st:
        return "-"
    if st["n"] == 1:
        return "%s (n=1)" % fmt(st["median"], unit)
    return "%s / %s (n=%d)" % (fmt(st["median"], unit), fmt(st["p99"], unit),
                               st["n"])


def table(results):
    """Markdown table: metric | Tether | anchor | ratio | goal | met."""
    out = ["| metric | Tether median / p99 (n) | anchor median / p99 (n) | "
           "ratio | goal | met |", "|---|---|---|---|---|---|"]
    for r in results:
        ratio = "-" if r.ratio is None else \
            ("%.2f×" if r.ratio >= 0.1 else "%.4f×") % r.ratio
        anchor = "-" if not r.anchor else "%s: %s" % (r.anchor_name,
                                                      cell(r.anchor, r.unit))
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        title = r.title + (" [%s]" % r.method if r.method != "wall clock" else "")
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            title, cell(r.tether, r.unit), anchor, ratio, r.goal or "-", met))
    notes = [r for r in results if r.note]
    if notes:
        out.append("")
        for r in notes:
            out.append("- %s: %s" % (r.title, r.note))
    return "\n".join(out)


def machine():
    """The box the run happened on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "memory_mib": mem, "loadavg_at_start": [round(x, 2) for x in load]}


def git_rev(src):
    try:
        return subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def write_json(path, doc):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.rename(tmp, path)
