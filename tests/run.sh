#!/usr/bin/env bash
# README command 2: install dependencies, build (normal and sanitizer builds),
# run the unit tests (ctest + cmocka) and the black-box tests (pytest against
# the real binaries and real peers on loopback).  Exits non-zero on any failure.
#
#   TETHER_TEST_FILTER=expr   only black-box tests matching (pytest -k expr)
#   TETHER_SKIP_ASAN=1        skip the sanitizer build (local iteration only)
#   TETHER_SKIP_VM=1          skip the VM tier (local iteration only)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

./install/deps.sh
./tests/check-format.sh
# Parts use only the parts docs/architecture.md allows (#include, CMake).
/usr/bin/python3 tests/check-boundaries.py

# The unit tests of the docker launcher talk to a real engine: start
# Debian's dockerd when none answers (stopped again at exit).
dockerd_pid=
if ! docker version >/dev/null 2>&1; then
  dockerd --host unix:///var/run/docker.sock >/var/log/tether-run-dockerd.log 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 150); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
fi
trap '[ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null; true' EXIT

# The docker unit tests run containers from the test base image: build it
# (debootstrap once, cached in /var/cache/tether-test) before them, so that
# on a fresh machine they run instead of skipping.
echo "== test base image (tether-test-base:bookworm)"
/usr/bin/python3 -c 'import sys; sys.path.insert(0, "tests/bb")
from harness import baseimage; baseimage.ensure_base_image()'

echo "== build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" -- --no-print-directory >/dev/null
# Each binary's NEEDED libraries are ones it calls; no runner code in the agent.
./tests/check-links.sh build

if [ "${TETHER_SKIP_ASAN:-0}" != 1 ]; then
  echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTETHER_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs" -- --no-print-directory >/dev/null
  echo "== unit tests under sanitizers"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0 \
    LSAN_OPTIONS=suppressions=$root/tests/lsan.supp \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs")
fi

echo "== unit tests"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== black-box tests"
export TETHER_BUILD_DIR=$root/build TETHER_SOURCE_DIR=$root
# A hung test fails after 300 s instead of eating the CI budget.
pytest_args=(-q -rs -p no:cacheprovider -o junit_family=xunit2 --timeout 300
  --durations 15 tests/bb)
[ -n "${TETHER_TEST_FILTER:-}" ] && pytest_args+=(-k "$TETHER_TEST_FILTER")
/usr/bin/python3 -m pytest "${pytest_args[@]}"

# VM tier (docs/testing-vm.md): Debian 12 guests with systemd and cgroup v2
# under qemu; ~4-6 minutes plus ~4 for the guest image on a fresh machine.
if [ "${TETHER_SKIP_VM:-0}" != 1 ]; then
  echo "== VM tier (tests/vm)"
  ./tests/vm/run.sh
fi

# Reliability suite (issue 13, docs/reliability.md; owned by its engineer):
# short fuzz runs, a black-box selection under the sanitizer build and the
# unit tests under valgrind, ~3-4 minutes.  TETHER_SKIP_RELIABILITY=1 skips.
if [ "${TETHER_SKIP_RELIABILITY:-0}" != 1 ]; then
  ./tests/fuzz/ci.sh
fi
