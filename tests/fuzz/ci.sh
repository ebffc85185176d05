#!/usr/bin/env bash
# The reliability suite's part of tests/run.sh (docs/reliability.md), after
# the builds and the black-box tests:
#  1. short bounded fuzz runs of every target with ASan + UBSan, replaying
#     the committed corpus and regression inputs (run-short.sh);
#  2. a black-box selection against the sanitizer build, failing on any
#     sanitizer report (run-sanitized-bb.sh) - skipped with TETHER_SKIP_ASAN=1;
#  3. the unit tests under valgrind, failing on errors and leaks.
# About 3-4 minutes on 2 cores.  TETHER_FUZZ_SECONDS sets the per-target
# fuzz time (default 6 s here).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
rc=0
echo "== fuzz (short, ASan + UBSan)"
TETHER_FUZZ_SECONDS=${TETHER_FUZZ_SECONDS:-6} tests/fuzz/run-short.sh || rc=1
if [ "${TETHER_SKIP_ASAN:-0}" != 1 ]; then
  echo "== black-box selection under ASan + UBSan"
  tests/fuzz/run-sanitized-bb.sh build-asan || rc=1
fi
echo "== unit tests under valgrind"
tests/fuzz/valgrind-unit.sh build || rc=1
exit $rc
