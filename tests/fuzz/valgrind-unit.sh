#!/usr/bin/env bash
# The unit tests of a (non-sanitizer) build dir under valgrind: fails on
# any memory error or definite/indirect leak (issue 13, item 16).  A test
# that exits 77 (skipped, e.g. needs docker) counts as skipped.
#   tests/fuzz/valgrind-unit.sh BUILD_DIR [ctest -R regex]
set -euo pipefail
dir=${1:?build dir}
filter=${2:-}
/usr/bin/python3 - "$dir" "$filter" <<'PY'
import json, re, subprocess, sys, time
build, rx = sys.argv[1], sys.argv[2]
tests = json.loads(subprocess.run(["ctest", "--show-only=json-v1"], cwd=build,
                                  check=True, capture_output=True).stdout)["tests"]
failed = []
for t in tests:
    if rx and not re.search(rx, t["name"]):
        continue
    cwd = next((p["value"] for p in t.get("properties", [])
                if p["name"] == "WORKING_DIRECTORY"), build)
    argv = ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--trace-children=no"] + t["command"]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        rc, out = -1, "timed out"
    took = time.monotonic() - t0
    verdict = {0: "ok", 77: "skipped"}.get(rc, "FAILED (rc %d)" % rc)
    print("valgrind %-32s %s (%.1fs)" % (t["name"], verdict, took), flush=True)
    if rc not in (0, 77):
        failed.append(t["name"])
        print(out[-4000:])
sys.exit(1 if failed else 0)
PY
