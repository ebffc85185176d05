#!/usr/bin/env bash
# README command 1: install dependencies, build, then show Tether working.
set -euo pipefail
cd "$(dirname "$0")/.."
./install/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" -- --no-print-directory >/dev/null
for b in agent/tether-agent runner/tether-runner workspace/server/tether-workspace workspace/cli/tether; do
  build/$b --version
done
