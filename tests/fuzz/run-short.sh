#!/usr/bin/env bash
# Short bounded fuzz runs for tests/run.sh: build the targets (build.sh),
# replay every regression input (tests/fuzz/regress/<target>/) and fuzz
# each target for TETHER_FUZZ_SECONDS (default 12) with ASan + UBSan.
# Fails on any crash, leak, sanitizer report or broken invariant.
# New corpus entries go to a scratch dir, never into the repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${TETHER_FUZZ_BUILD:-$root/build-fuzz}
secs=${TETHER_FUZZ_SECONDS:-12}
"$root/tests/fuzz/build.sh" "$dir"
scratch=$(mktemp -d /tmp/tether-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fail=0
for t in jobspec conf lease_reply ws_log snapshot docker_stream; do
  bin=$(find "$dir" -name "fuzz_$t" -type f -perm -u+x | head -1)
  corpus=$root/tests/fuzz/corpus/$t
  mkdir -p "$scratch/$t"
  # Regression inputs (crashes found before, now fixed - or not yet: see
  # docs/reliability.md) run once each, apart from the fuzzing corpus so
  # one of them failing does not stop the target's fuzzing.
  for f in "$root/tests/fuzz/regress/$t"/*; do
    [ -e "$f" ] || continue
    if ! "$bin" -runs=1 "$f" >"$scratch/$t.regress.log" 2>&1; then
      echo "REGRESSION $t: $f"
      grep -E 'runtime error|ERROR|SUMMARY' "$scratch/$t.regress.log" | head -5
      fail=1
    fi
  done
  echo "== fuzz $t (${secs}s)"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=0 \
      -artifact_prefix="$scratch/$t-" "$scratch/$t" "$corpus" \
      >"$scratch/$t.log" 2>&1; then
    tail -40 "$scratch/$t.log"
    for a in "$scratch/$t-"*; do
      [ -e "$a" ] || continue
      echo "crash input (add to tests/fuzz/corpus/$t after the fix): $a"
      mkdir -p /tmp/tether-fuzz-crashes && cp "$a" /tmp/tether-fuzz-crashes/
    done
    fail=1
  else
    grep -E '^(Done|#[0-9]+ *DONE)' "$scratch/$t.log" | tail -1 || true
  fi
done
exit $fail
