#!/usr/bin/env bash
# Install every build and test dependency of Tether from Debian 12's archive.
# Idempotent and quiet on success; run as root.
set -euo pipefail

PKGS=(
  # toolchain
  build-essential git pkg-config cmake clang-format ca-certificates curl
  # libraries
  libcurl4-openssl-dev libssh2-1-dev libjansson-dev libgit2-dev libcgroup-dev
  libsqlite3-dev libmicrohttpd-dev libarchive-dev libssl-dev libcmocka-dev
  # runtime tools used by the agent and its tests
  sqlite3 openssl openssh-server openssh-client docker.io debootstrap
  slurmctld slurmd slurm-client munge iptables nftables faketime
  python3 python3-venv python3-pip python3-torch python3-numpy python3-pytest python3-pytest-timeout python3-sklearn
  procps psmisc strace util-linux iproute2 xz-utils docker-registry apache2-utils
  bubblewrap valgrind clang libclang-rt-14-dev dpkg-dev file gzip tar
  chromium  # headless browser for the web page tests (tests/bb/test_web_*.py)
  qemu-system-x86 qemu-utils  # the VM tier's Debian 12 guests (tests/vm/)
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install/deps.sh: must run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/tether-deps.XXXXXX)
if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "install/deps.sh: apt-get failed installing: ${missing[*]} (full log: $log)" >&2
  exit 1
fi
# Debian starts services in postinst when it can; the tests start their own.
rm -f "$log"
