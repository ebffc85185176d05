#!/usr/bin/env bash
# Black-box tests against the ASan + UBSan build (issue 13, item 16): every
# Tether process the tests start writes any sanitizer report (memory error,
# undefined behaviour, leak at exit) to a file under a fresh directory; the
# run fails when the tests fail or when any report was written.
#   tests/fuzz/run-sanitized-bb.sh BUILD_DIR [pytest paths/args...]
# Default tests: a bounded, end-to-end selection (agent, workspace, runner,
# transports, logs, faults); pass tests/bb for the whole suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(cd "${1:?sanitizer build dir}" && pwd)
shift
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(tests/bb/test_agent_basic.py tests/bb/test_workspace_logs.py
         tests/bb/test_sec_secrets.py tests/bb/test_rel_log_faults.py
         tests/bb/test_sec_job_leaks.py)
fi
# /var/tmp: the sandbox gives jobs (and the runner's init) a private /tmp.
reports=$(mktemp -d /var/tmp/tether-sanitizer.XXXXXX)
chmod 0777 "$reports"
trap 'rm -rf "$reports"' EXIT
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
cd "$root"
rc=0
TETHER_BUILD_DIR=$dir TETHER_SOURCE_DIR=$root /usr/bin/python3 -m pytest -q \
  -p no:cacheprovider "${tests[@]}" || rc=$?
n=$(find "$reports" -type f | wc -l)
if [ "$n" -gt 0 ]; then
  echo "== $n sanitizer report(s):"
  for f in "$reports"/*; do echo "--- $f"; head -60 "$f"; done
  rc=1
fi
exit $rc
