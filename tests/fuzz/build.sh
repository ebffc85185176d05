#!/usr/bin/env bash
# Build the libFuzzer targets with clang, ASan and UBSan into $1
# (default build-fuzz at the repository root).  The libraries get
# -fsanitize=fuzzer-no-link so coverage reaches the code under test.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/build-fuzz}
CC=clang cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Debug \
  -DTETHER_SANITIZE=ON -DTETHER_FUZZ=ON -DTETHER_TESTS=OFF \
  -DTETHER_WERROR=OFF -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link -O1" \
  >/dev/null
targets=(jobspec conf lease_reply ws_log snapshot docker_stream)
cmake --build "$dir" -j"${TETHER_FUZZ_JOBS:-2}" -- --no-print-directory \
  $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
