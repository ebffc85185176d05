#!/usr/bin/env bash
# Link check (issue 21, docs/architecture.md): every binary is linked
# --as-needed, so each NEEDED entry (readelf -d) must be a library the binary
# calls (at least one of its undefined dynamic symbols is defined there); and
# tether-agent links no runner code (not the runner library, no symbol of
# it).  Usage: tests/check-links.sh [build-dir]   (default: build)
set -euo pipefail
build=${1:-build}
bins=(agent/tether-agent runner/tether-runner runner/tether-runner-full cli/tether
	workspace/server/tether-workspace)
fail=0

# Path of a shared library by its soname, as the loader finds it.
lib_path() {
	ldconfig -p | awk -v l="$1" '$1 == l && !n++ { print $NF }'
}

for b in "${bins[@]}"; do
	bin=$build/$b
	[ -x "$bin" ] || { echo "check-links: $bin is not built" >&2; exit 1; }
	undef=$(nm -D --undefined-only "$bin" | awk '{ sub(/@.*/, "", $2); print $2 }' | sort -u)
	for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		path=$(lib_path "$lib")
		if [ -z "$path" ]; then
			echo "check-links: $b needs $lib, which the loader does not know" >&2
			fail=1
			continue
		fi
		def=$(nm -D --defined-only "$path" | awk '{ sub(/@.*/, "", $3); print $3 }' | sort -u)
		if [ -z "$(comm -12 <(echo "$undef") <(echo "$def"))" ]; then
			echo "check-links: $b records NEEDED $lib but calls nothing in it" >&2
			fail=1
		fi
	done
done

# tether-agent: no runner library on its link line, no runner function in it.
link=$build/agent/CMakeFiles/tether-agent.dir/link.txt
if [ -f "$link" ] && grep -q 'libtrunner\.a' "$link"; then
	echo "check-links: tether-agent links the runner library (libtrunner.a)" >&2
	fail=1
fi
runner_syms=$(nm --defined-only -g "$build/runner/libtrunner.a" 2>/dev/null |
	awk 'NF == 3 && $2 ~ /[TDBR]/ { print $3 }' | sort -u)
agent_syms=$(nm --defined-only -g "$build/agent/tether-agent" |
	awk 'NF == 3 { print $3 }' | sort -u)
shared=$(comm -12 <(echo "$runner_syms") <(echo "$agent_syms"))
if [ -n "$shared" ]; then
	echo "check-links: tether-agent holds runner code:" $shared >&2
	fail=1
fi
# tether-runner: the start path of a local job loads no libgit2, libarchive
# or libcurl (runner/split.h); those are tether-runner-full's.
heavy=$(readelf -d "$build/runner/tether-runner" |
	sed -n 's/.*(NEEDED).*\[\(libgit2\|libarchive\|libcurl\)\(.*\)\]/\1\2/p')
if [ -n "$heavy" ]; then
	echo "check-links: tether-runner links" $heavy "(tether-runner-full's)" >&2
	fail=1
fi
[ "$fail" = 0 ] && echo "check-links: ok (${bins[*]})"
exit "$fail"
