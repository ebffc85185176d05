#!/usr/bin/env bash
# Fail when a tracked C file differs from what clang-format makes of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r f; do
  [ -f "$f" ] || continue
  if ! clang-format --style=file "$f" | cmp -s - "$f"; then
    echo "not formatted: $f (run: clang-format -i $f)" >&2
    bad=1
  fi
done < <(git ls-files '*.c' '*.h'; git ls-files --others --exclude-standard '*.c' '*.h')
exit $bad
