#!/usr/bin/python3
"""Boundary check (docs/architecture.md, issue 21): fail when a source file
includes a header of a part its part may not use, a header internal to
another part, or when a part's CMake link line names a library it may not
use.  Crossings that remain today are listed in KNOWN with a reason; any
other crossing fails.  Usage: tests/check-boundaries.py [source-dir]"""
import os
import re
import sys

# part -> the parts it may use (docs/architecture.md, "allowed").
ALLOWED = {
    "common": set(),
    "transport": {"common"},
    "docker": {"common"},
    "runner": {"docker", "common"},
    "agent": {"transport", "docker", "common"},
    "cli": {"transport", "common"},
    "workspace/server": {"common"},
}
LIBS = {"tcommon": "common", "ttransport": "transport", "tdocker": "docker",
        "trunner": "runner", "tagent": "agent", "tcli": "cli",
        "tworkspace": "workspace/server"}
# Headers only their own part may include (tests may: they test internals).
INTERNAL = {"transport/ssh-tunnel-int.h", "transport/ssh-tunnel-pump.h"}
# Inside runner/ (docs/architecture.md, "Each folder's job"): the families
# the supervisor uses never include it or the command table, so no include
# cycle comes back (issue 21 broke env-cache <-> supervisor).
RUNNER_BELOW = ("runner/env/", "runner/source/", "runner/sandbox/",
                "runner/docker/", "runner/slurm/", "runner/metrics/")
RUNNER_ABOVE = ("runner/supervisor/", "runner/cmd.h")
# Known debt of issue 21: (file, included header) -> why it is still there.
KNOWN = {}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def part_of(path):
    """The part a repository path belongs to, or None."""
    best = None
    for p in ALLOWED:
        if path.startswith(p + "/") and (best is None or len(p) > len(best)):
            best = p
    return best


def check_includes(src, seen):
    bad = []
    for part in ALLOWED:
        for root, _, files in os.walk(os.path.join(src, part)):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                rel = os.path.relpath(os.path.join(root, f), src)
                if part_of(rel) != part:
                    continue  # a nested part scans its own files
                with open(os.path.join(src, rel), errors="replace") as fh:
                    text = fh.read()
                for hdr in INCLUDE.findall(text):
                    if rel.startswith(RUNNER_BELOW) and \
                            hdr.startswith(RUNNER_ABOVE):
                        bad.append('%s: #include "%s": runner families sit '
                                   'below the supervisor and the commands'
                                   % (rel, hdr))
                        continue
                    to = part_of(hdr)
                    ok = to == part or (to in ALLOWED[part] and
                                        hdr not in INTERNAL)
                    if ok:
                        continue
                    if (rel, hdr) in KNOWN:
                        seen.add((rel, hdr))
                        continue
                    why = ("internal to " + to if hdr in INTERNAL and to
                           else "%s may not use %s" % (part, to or
                                                       os.path.dirname(hdr)))
                    bad.append('%s: #include "%s": %s' % (rel, hdr, why))
    return bad


def check_links(src):
    bad = []
    for part in ALLOWED:
        cm = os.path.join(src, part, "CMakeLists.txt")
        if not os.path.exists(cm):
            continue
        with open(cm) as fh:
            text = re.sub(r"#.*", "", fh.read())
        for lib in re.findall(r"\b(t[a-z]+)\b", text):
            to = LIBS.get(lib)
            if to is None or to == part or to in ALLOWED[part]:
                continue
            bad.append("%s/CMakeLists.txt: links %s: %s may not use %s" %
                       (part, lib, part, to))
    return bad


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    seen = set()
    bad = check_includes(src, seen) + check_links(src)
    for k in sorted(set(KNOWN) - seen):
        print("check-boundaries: note: known crossing %s -> %s is gone: "
              "drop it from KNOWN" % k)
    for b in bad:
        print("check-boundaries: " + b, file=sys.stderr)
    if bad:
        print("check-boundaries: %d crossing(s) the architecture forbids "
              "(docs/architecture.md)" % len(bad), file=sys.stderr)
        return 1
    print("check-boundaries: ok (%d known crossing(s) of issue 21)" %
          len(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
