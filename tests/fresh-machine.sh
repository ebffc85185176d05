#!/usr/bin/env bash
# Check the README's two commands the way a newcomer meets them: a minimal
# Debian 12 (debootstrap --variant=minbase bookworm + git + ca-certificates),
# imported as a Docker image, running a clean clone of this repository in a
# container with near-root powers (all capabilities but SYS_RESOURCE, seccomp
# unconfined, /proc unmasked as on a real machine, cgroupfs read-write,
# /var/lib/docker on a tmpfs) so that its own dockerd, cgroups and namespaces
# work.  Not part of tests/run.sh (it takes long).
#
#   tests/fresh-machine.sh [quickstart|tests|both]    (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-both}
cache=/var/cache/tether-test
rootfs_tar=$cache/fresh-bookworm-minbase.tar
image=tether-fresh:bookworm

docker_up() { docker version >/dev/null 2>&1; }
if ! docker_up; then
  nohup dockerd >/var/log/tether-fresh-dockerd.log 2>&1 &
  for _ in $(seq 100); do docker_up && break; sleep 0.2; done
  docker_up || { echo "fresh-machine: dockerd did not start" >&2; exit 1; }
fi

mkdir -p "$cache"
if [ ! -s "$rootfs_tar" ]; then
  dir=$(mktemp -d /var/tmp/tether-fresh.XXXXXX)
  echo "== debootstrap --variant=minbase bookworm (once, cached in $cache)"
  # the Debian mirror of this machine's own apt sources
  mirror=$(cd tests/bb && /usr/bin/python3 -c \
    'from harness.baseimage import apt_mirror; print(apt_mirror())')
  debootstrap --variant=minbase --include=git,ca-certificates bookworm "$dir" \
    "$mirror" >"$cache/debootstrap.log" 2>&1
  tar -C "$dir" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$dir"
fi
docker image inspect "$image" >/dev/null 2>&1 ||
  docker import "$rootfs_tar" "$image" >/dev/null

clone=$(mktemp -d /var/tmp/tether-clone.XXXXXX)
trap 'rm -rf "$clone"' EXIT
git clone -q "file://$PWD" "$clone/tether"

case $what in
  quickstart) cmd='./install/quickstart.sh' ;;
  tests) cmd='./tests/run.sh' ;;
  both) cmd='./install/quickstart.sh && ./tests/run.sh' ;;
  *) echo "usage: $0 [quickstart|tests|both]" >&2; exit 2 ;;
esac

echo "== running in a fresh Debian 12 container: $cmd"
docker run --rm -i --name "tether-fresh-$$" \
  --cap-add ALL --cap-drop SYS_RESOURCE \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined \
  --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  --tmpfs /var/lib/docker:exec,size=20g --tmpfs /tmp:exec,size=10g \
  -v "$clone/tether:/root/tether" -w /root/tether \
  -e CI=true "$image" bash -c "$cmd"
