#!/usr/bin/env bash
# The VM tier (docs/testing-vm.md): boots Debian 12 guests (systemd, cgroup
# v2) under qemu and proves the .deb, the systemd unit and the sandbox's v2
# limits there.  Called by tests/run.sh after the black-box tests; needs
# root, qemu (install/deps.sh) and a build in $TETHER_BUILD_DIR (default
# build/).  The guest images (the base one, and the digits example's with
# Debian's PyTorch) are built on first use and cached in $TETHER_VM_CACHE
# (default /var/cache/tether-vm), keyed by their inputs; the debootstrap
# tarball in $TETHER_TEST_CACHE (default /var/cache/tether-test).
#
#   TETHER_VM_LOGS=DIR   keep the guests' journals and consoles there
#   TETHER_VM_CACHE=$(mktemp -d) TETHER_TEST_CACHE=$(mktemp -d)
#                        a cold run: everything built from scratch
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export TETHER_BUILD_DIR=${TETHER_BUILD_DIR:-$root/build} TETHER_SOURCE_DIR=$root
export TETHER_VM_LOGS=${TETHER_VM_LOGS:-$(mktemp -d /tmp/tether-vm-logs.XXXXXX)}
start=$(date +%s)
rc=0
# Boot is retried inside the harness; a test is not.  A test's 25 min
# include the image build and two boot tries; 30 min cap the tier.
timeout --kill-after=60 1800 /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider \
  --timeout 1500 --durations 10 tests/vm || rc=$?
echo "== VM tier: rc $rc in $(( $(date +%s) - start )) s (guest logs: $TETHER_VM_LOGS)"
exit $rc
