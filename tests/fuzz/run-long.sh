#!/usr/bin/env bash
# Long fuzz runs (outside CI): each target for TETHER_FUZZ_SECONDS
# (default 3600), new corpus entries kept in build-fuzz/corpus-<target>.
# Crashes land in build-fuzz/crash-<target>-*: minimise one with
# `fuzz_<target> -minimize_crash=1 FILE`, fix, then commit it under
# tests/fuzz/regress/<target>/ so every short run replays it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${TETHER_FUZZ_BUILD:-$root/build-fuzz}
secs=${TETHER_FUZZ_SECONDS:-3600}
"$root/tests/fuzz/build.sh" "$dir"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fail=0
for t in ${TETHER_FUZZ_TARGETS:-jobspec conf lease_reply ws_log snapshot docker_stream}; do
  bin=$(find "$dir" -name "fuzz_$t" -type f -perm -u+x | head -1)
  mkdir -p "$dir/corpus-$t"
  echo "== fuzz $t (${secs}s)"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -artifact_prefix="$dir/crash-$t-" \
    "$dir/corpus-$t" "$root/tests/fuzz/corpus/$t" || fail=1
done
exit $fail
