#!/usr/bin/env bash
# install/install.sh: install (or upgrade) the Tether node agent on this machine.
#
# Installs the binaries, the unprivileged job user, /etc/tether/agent.conf
# (from the commented sample; an existing one is never overwritten), the state
# directory /var/lib/tether (0700) and the systemd unit; optionally registers
# the node with a workspace.  Idempotent: running it again upgrades the
# binaries and restarts the agent, whose running jobs carry on (they are
# re-attached).  See docs/operations.md.
set -euo pipefail

prog=install.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	cat <<EOF
usage: $prog [options]
Install or upgrade the Tether node agent.

where the binaries come from (default: the build tree $here/../build):
  --build-dir DIR     a CMake build tree (DIR/agent/tether-agent ...)
  --from-prefix DIR   an installed prefix (DIR/bin/tether-agent ...)
where they go:
  --prefix DIR        binaries go to DIR/bin (default /usr/local)
  --root DIR          install into the tree DIR instead of / (images, tests)
registration (the agent trades the token for its credential on its first start):
  --workspace URL     https://host[:port] or ssh://user@host[:port]
  --token T           registration token (tr_...) from a workspace admin
  --name N            agent name (default: the host name)
  --labels a,b        extra labels
  --ca FILE           CA bundle to verify the workspace's TLS certificate
service:
  --start             without systemd: (re)start the agent in the background
  --no-start          with systemd: install and enable, but do not (re)start
  --user NAME         job user (default tether-job)
  -h, --help          this help
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 1
}
say() { echo "$prog: $*"; }

build_dir=$here/../build
from_prefix=
prefix=/usr/local
root=
workspace='' token='' name='' labels='' ca=''
start=0 no_start=0
job_user=tether-job

need_arg() { [ $# -ge 2 ] || die "option $1 needs a value; see '$prog --help'"; }
while [ $# -gt 0 ]; do
	case $1 in
	--build-dir) need_arg "$@"; build_dir=$2; shift ;;
	--from-prefix) need_arg "$@"; from_prefix=$2; shift ;;
	--prefix) need_arg "$@"; prefix=$2; shift ;;
	--root) need_arg "$@"; root=$(cd "$2" && pwd); shift ;;
	--workspace) need_arg "$@"; workspace=$2; shift ;;
	--token) need_arg "$@"; token=$2; shift ;;
	--name) need_arg "$@"; name=$2; shift ;;
	--labels) need_arg "$@"; labels=$2; shift ;;
	--ca) need_arg "$@"; ca=$2; shift ;;
	--user) need_arg "$@"; job_user=$2; shift ;;
	--start) start=1 ;;
	--no-start) no_start=1 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option '$1'; see '$prog --help'" ;;
	esac
	shift
done
[ "$root" = / ] && root=
[ -n "$workspace" ] && [ -z "$token" ] && [ ! -s "$root/var/lib/tether/credentials" ] &&
	die "--workspace needs --token (a registration token from a workspace admin)"
[ "$(id -u)" -eq 0 ] || die "must run as root (it creates a system user and /var/lib/tether)"

conf_dir=/etc/tether
conf=$conf_dir/agent.conf
state_dir=/var/lib/tether
unit_dir=/etc/systemd/system
unit=tether-agent.service
bindir=$prefix/bin
datadir=$prefix/share/tether
agent=$bindir/tether-agent

# systemd_running: true when systemd is PID 1 of the target system.
systemd_running() {
	[ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

# source_of NAME SUBDIR: path of a binary to install, or empty if absent.
source_of() {
	local p
	if [ -n "$from_prefix" ]; then p=$from_prefix/bin/$1; else p=$build_dir/$2/$1; fi
	[ -x "$p" ] && echo "$p"
	return 0
}

install_binaries() {
	local src
	src=$(source_of tether-agent agent)
	[ -n "$src" ] || die "no tether-agent in ${from_prefix:-$build_dir}: build it first (cmake --build build) or pass --build-dir/--from-prefix"
	[ -n "$(source_of tether-runner runner)" ] || die "no tether-runner next to $src"
	[ -n "$(source_of tether-runner-full runner)" ] || die "no tether-runner-full next to $src"
	install -d -m 0755 "$root$bindir"
	# install(1) writes a new inode, so a running agent or runner keeps its
	# old binary until it restarts (no "text file busy").
	# tether-runner-full: the runner's heavy half, found beside tether-runner
	for b in tether-agent:agent tether-runner-full:runner tether-runner:runner \
		tether:cli; do
		src=$(source_of "${b%%:*}" "${b#*:}")
		[ -n "$src" ] || continue
		install -m 0755 "$src" "$root$bindir/${b%%:*}"
	done
	say "binaries installed in $root$bindir"
}

# sample_conf: the commented configuration sample shipped with this version.
sample_conf() {
	local c
	for c in "$here/agent.conf.sample" "${from_prefix:+$from_prefix/share/tether/agent.conf.sample}" \
		"$root$datadir/agent.conf.sample"; do
		[ -n "$c" ] && [ -f "$c" ] && { echo "$c"; return 0; }
	done
	return 0
}

create_user() {
	if grep -q "^$job_user:" "$root/etc/passwd" 2>/dev/null; then
		return 0
	fi
	local nologin=/usr/sbin/nologin
	[ -x "$root$nologin" ] || nologin=/bin/false
	useradd ${root:+--root "$root"} --system --user-group --no-create-home \
		--home-dir /nonexistent --shell "$nologin" \
		--comment "Tether jobs" "$job_user" ||
		die "could not create the job user '$job_user' (useradd failed)"
	say "created system user $job_user"
}

create_dirs() {
	install -d -m 0755 "$root$conf_dir"
	install -d -m 0700 -o 0 -g 0 "$root$state_dir"
	chmod 0700 "$root$state_dir"
	install -d -m 0755 "$root$datadir"
	local s
	s=$(sample_conf)
	if [ -n "$s" ] && [ "$s" != "$root$datadir/agent.conf.sample" ]; then
		install -m 0644 "$s" "$root$datadir/agent.conf.sample"
	fi
	if [ -e "$root$conf" ]; then
		say "kept the existing $conf"
	elif [ -n "$s" ]; then
		install -m 0600 "$s" "$root$conf"
		say "wrote $conf from the commented sample"
	else
		printf '# Tether agent configuration: see docs/configuration.md\n' >"$root$conf"
		chmod 0600 "$root$conf"
		say "wrote an empty $conf (no sample found)"
	fi
}

# conf_set KEY VALUE: set KEY in agent.conf, replacing its first (possibly
# commented-out) line, else appending; other lines are left as they are.
conf_set() {
	local f=$root$conf key=$1 val=$2 tmp
	tmp=$(mktemp "$f.XXXXXX")
	awk -v k="$key" -v v="$val" '
		!done && $0 ~ "^[#[:space:]]*" k "[[:space:]]*=" { print k " = " v; done = 1; next }
		{ print }
		END { if (!done) print k " = " v }' "$f" >"$tmp"
	chmod 0600 "$tmp"
	mv -f "$tmp" "$f"
}

# register: the workspace settings go into agent.conf; the agent trades the
# token for its credential on its first start (wait_registered reports it).
register() {
	[ -n "$workspace" ] || return 0
	conf_set workspace "$workspace"
	[ -n "$ca" ] && conf_set ca_file "$ca"
	[ -n "$name" ] && conf_set name "$name"
	[ -n "$labels" ] && conf_set labels "$labels"
	if [ -z "$token" ]; then
		say "already registered (credentials present); workspace set to $workspace"
		return 0
	fi
	conf_set token "$token"
	say "the agent registers with $workspace on its first start"
}

# wait_registered: after a start with a new token, wait for the credential.
wait_registered() {
	[ -n "$token" ] || return 0
	local cred=$root$state_dir/credentials
	for _ in $(seq 150); do
		[ -s "$cred" ] && {
			say "registered with $workspace"
			return 0
		}
		sleep 0.2
	done
	say "warning: not registered after 30s; see the agent's log (journalctl -u $unit or $logfile) and run: $agent doctor"
}

install_unit() {
	local src=$here/tether-agent.service
	[ -f "$src" ] || src=$root$datadir/tether-agent.service
	[ -f "$src" ] || die "no tether-agent.service next to $prog"
	install -d -m 0755 "$root$unit_dir"
	sed -e "s|/usr/bin/tether-agent|$agent|g" "$src" >"$root$unit_dir/$unit.tmp"
	chmod 0644 "$root$unit_dir/$unit.tmp"
	mv -f "$root$unit_dir/$unit.tmp" "$root$unit_dir/$unit"
	[ "$src" = "$root$datadir/tether-agent.service" ] ||
		install -m 0644 "$src" "$root$datadir/tether-agent.service"
	install -m 0755 "$here/uninstall.sh" "$root$datadir/uninstall.sh" 2>/dev/null || true
}

# The agent's pid file when it runs without systemd.
pidfile=/run/tether-agent.pid
logfile=/var/log/tether-agent.log

agent_pid() {
	local pid
	pid=$(cat "$root$pidfile" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
		grep -q tether-agent "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

# stop_background: stop the agent started by --start at once (SIGQUIT; SIGTERM
# would drain); its jobs keep running and the new agent re-attaches to them.
stop_background() {
	local pid
	pid=$(agent_pid) || return 0
	kill -QUIT "$pid"
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	die "the running agent (pid $pid) did not stop within 30s"
}

start_background() {
	stop_background
	install -d -m 0755 "$root$(dirname "$logfile")"
	# A clean environment, as systemd gives it: the caller's TETHER_* (the
	# CLI's TETHER_TOKEN is an admin token) must not override agent.conf.
	local clean=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
	if [ -n "$root" ]; then
		setsid "${clean[@]}" chroot "$root" "$agent" run --config "$conf" >>"$root$logfile" 2>&1 </dev/null &
	else
		setsid "${clean[@]}" "$agent" run --config "$conf" >>"$logfile" 2>&1 </dev/null &
	fi
	echo $! >"$root$pidfile"
	say "agent started in the background (pid $!, log $logfile)"
}

start_service() {
	if systemd_running; then
		systemctl daemon-reload
		systemctl enable "$unit" >/dev/null 2>&1 || die "systemctl enable $unit failed"
		if [ "$no_start" = 1 ]; then
			say "installed and enabled $unit; start it with: systemctl start $unit"
		else
			# restart: an upgrade replaces the agent; KillMode=process keeps jobs.
			systemctl restart "$unit" || die "systemctl restart $unit failed: see journalctl -u $unit"
			say "$unit (re)started; follow it with: journalctl -fu $unit"
			wait_registered
		fi
	elif [ "$start" = 1 ]; then
		start_background
		wait_registered
	else
		if agent_pid >/dev/null; then
			say "note: an agent still runs the old binary (pid $(agent_pid)); restart it with: $prog --start"
		fi
		say "systemd is not running here; start the agent with:"
		say "  setsid $agent run --config $conf >>$logfile 2>&1 &   (or: $prog --start)"
	fi
}

install_binaries
create_user
create_dirs
install_unit
register
start_service
say "done; check the node with: $agent doctor"
