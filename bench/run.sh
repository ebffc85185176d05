#!/usr/bin/env bash
# Tether benchmarks (docs/performance.md): build a release build, start the
# peers on loopback through the test harness, measure, print the table.
#
#   bench/run.sh [--quick] [--out FILE] [--only idle,submit,...]
#
#   BENCH_BUILD_DIR=DIR   build directory (default: build-bench/ in the tree)
#   BENCH_NO_BUILD=1      use BENCH_BUILD_DIR as it is (tests/bb does this)
# Full run: under 15 minutes on 2 cores; --quick: every metric with tiny
# counts, under 2 minutes.  Needs root (sandbox, cgroups, slurmd, dockerd).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build-bench}
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  echo "[bench] building RelWithDebInfo (-O2 -g) in $build" >&2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target tether-agent tether-runner \
    tether-workspace tether -- --no-print-directory >/dev/null
fi
export TETHER_BUILD_DIR=$build TETHER_SOURCE_DIR=$root
exec /usr/bin/python3 "$root/bench/bench.py" "$@"
