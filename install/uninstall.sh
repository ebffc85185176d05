#!/usr/bin/env bash
# install/uninstall.sh: remove what install/install.sh installed.
#
# Drains the agent first (running jobs finish; no new ones start), stops it,
# then removes the unit, the binaries and the shipped sample.  The
# configuration (/etc/tether), the state (/var/lib/tether: identity, queue,
# logs, environments) and the job user are kept unless --purge is given.
set -euo pipefail

prog=uninstall.sh

usage() {
	cat <<EOF
usage: $prog [options]
Remove the Tether node agent.
  --prefix DIR        where install.sh put the binaries (default /usr/local)
  --root DIR          remove from the tree DIR instead of / (images, tests)
  --purge             also remove /etc/tether, /var/lib/tether and the job user
  --drain-timeout S   wait at most S seconds for running jobs (default 3600)
  --no-drain          do not wait for running jobs (they keep running, orphaned)
  --user NAME         job user (default tether-job)
  -h, --help          this help
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 1
}
say() { echo "$prog: $*"; }

prefix=/usr/local
root=
purge=0
drain=1
drain_timeout=3600
job_user=tether-job

need_arg() { [ $# -ge 2 ] || die "option $1 needs a value; see '$prog --help'"; }
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) need_arg "$@"; prefix=$2; shift ;;
	--root) need_arg "$@"; root=$(cd "$2" && pwd); shift ;;
	--purge) purge=1 ;;
	--no-drain) drain=0 ;;
	--drain-timeout) need_arg "$@"; drain_timeout=$2; shift ;;
	--user) need_arg "$@"; job_user=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option '$1'; see '$prog --help'" ;;
	esac
	shift
done
[ "$root" = / ] && root=
[[ $drain_timeout =~ ^[0-9]+$ ]] || die "--drain-timeout: expected seconds, got '$drain_timeout'"
[ "$(id -u)" -eq 0 ] || die "must run as root"

unit=tether-agent.service
unit_file=$root/etc/systemd/system/$unit
bindir=$prefix/bin
agent=$bindir/tether-agent
pidfile=/run/tether-agent.pid
state_dir=/var/lib/tether

systemd_running() {
	[ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

# pids_of NAME: pids of the installed binary NAME (tether-agent,
# tether-runner), including ones still running a replaced (upgraded) file.
pids_of() {
	local d exe
	for d in /proc/[0-9]*; do
		exe=$(readlink "$d/exe" 2>/dev/null) || continue
		[ "${exe% (deleted)}" = "$root$bindir/$1" ] && echo "${d#/proc/}"
	done
	return 0
}

# in_root CMD...: run a command of the installed tree (chrooted with --root).
in_root() {
	if [ -n "$root" ]; then chroot "$root" "$@"; else "$@"; fi
}

# agent_pid: the agent started in the background by install.sh --start.
agent_pid() {
	local pid
	pid=$(cat "$root$pidfile" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
		grep -q tether-agent "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

# drain_jobs: `tether-agent drain` (SIGTERM: no new jobs, queued ones handed
# back to the workspace, exit when the running ones end), then wait until
# neither the agent nor any runner is left.
drain_jobs() {
	[ "$drain" = 1 ] || return 0
	if [ -n "$(pids_of tether-agent)" ]; then
		in_root "$agent" drain --config /etc/tether/agent.conf ||
			say "warning: 'tether-agent drain' failed; waiting for the running jobs anyway"
	fi
	local waited=0 n a
	while n=$({ pids_of tether-runner; pids_of tether-runner-full; } | wc -l) &&
		a=$(pids_of tether-agent | wc -l) &&
		[ $((n + a)) -gt 0 ]; do
		if [ "$waited" -ge "$drain_timeout" ]; then
			die "$n job(s) still running after ${drain_timeout}s; wait, cancel them, or use --no-drain"
		fi
		[ $((waited % 30)) -eq 0 ] && say "draining: waiting for $n running job(s)..."
		sleep 1
		waited=$((waited + 1))
	done
}

stop_agent() {
	if systemd_running && systemctl cat "$unit" >/dev/null 2>&1; then
		systemctl disable --now "$unit" >/dev/null 2>&1 || true
	fi
	local pid
	if pid=$(agent_pid); then
		kill -QUIT "$pid" # at once; runners keep running
		for _ in $(seq 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && die "the agent (pid $pid) did not stop within 30s"
	fi
	rm -f "$root$pidfile"
}

remove_files() {
	rm -f "$unit_file"
	rm -rf "$unit_file.d" "$root/etc/systemd/system/multi-user.target.wants/$unit"
	systemd_running && systemctl daemon-reload
	rm -f "$root$bindir/tether-agent" "$root$bindir/tether-runner" \
		"$root$bindir/tether-runner-full" "$root$bindir/tether"
	rm -rf "$root$prefix/share/tether"
	say "removed the unit and the binaries"
}

purge_all() {
	[ "$purge" = 1 ] || {
		say "kept /etc/tether and $state_dir (remove them with --purge)"
		return 0
	}
	# $state_dir-slurm: the slurm launcher's default staging dir (docs/slurm.md)
	rm -rf "$root/etc/tether" "$root$state_dir" "$root$state_dir-slurm" \
	    "$root/var/log/tether-agent.log"
	if grep -q "^$job_user:" "$root/etc/passwd" 2>/dev/null; then
		userdel ${root:+--root "$root"} "$job_user" ||
			say "warning: could not remove the user $job_user"
	fi
	say "purged /etc/tether, $state_dir and the user $job_user"
}

drain_jobs
stop_agent
remove_files
purge_all
