#!/usr/bin/env bash
# README command 1: install dependencies, build, start a local workspace and
# an agent on loopback, run the example training job (examples/digits) end to
# end with its live log, show its result and outputs, and stop what it started.
#
#   QUICKSTART_KEEP=1   leave the workspace and agent running (prints how to stop)
#   QUICKSTART_SPEC=F   another job spec (default examples/digits/job-venv.json)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
spec=${QUICKSTART_SPEC:-examples/digits/job-venv.json}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing Debian packages (install/deps.sh)"
./install/deps.sh
say "building (cmake, build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" -- --no-print-directory >/dev/null
# Jobs run as an unprivileged user (install/install.sh creates it too).
id tether-job >/dev/null 2>&1 ||
  useradd --system --no-create-home --shell /usr/sbin/nologin tether-job
bin=$root/build
ws_bin=$bin/workspace/server/tether-workspace
agent_bin=$bin/agent/tether-agent
cli=$bin/cli/tether

# State lives outside /tmp: jobs get a private /tmp of their own.
demo=$(mktemp -d /var/tmp/tether-quickstart.XXXXXX)
chmod 0755 "$demo" # the job user reaches its environment under it
ws_pid= agent_pid=
cleanup() {
  local rc=$?
  if [ "${QUICKSTART_KEEP:-0}" = 1 ]; then
    echo "left running: workspace pid $ws_pid, agent pid $agent_pid (state in $demo)"
    exit $rc
  fi
  [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  [ -n "$ws_pid" ] && kill -TERM "$ws_pid" 2>/dev/null && wait "$ws_pid" 2>/dev/null
  exit $rc
}
trap cleanup EXIT INT TERM

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2
  for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done
  echo "quickstart: timed out waiting for $what" >&2
  return 1
}

say "starting a workspace on loopback with TLS ($demo/workspace)"
"$ws_bin" init --dir "$demo/workspace" >/dev/null
"$ws_bin" serve --dir "$demo/workspace" --port 0 --plain-port -1 \
  >"$demo/workspace.log" 2>&1 &
ws_pid=$!
wait_for 15 "the workspace to listen" test -s "$demo/workspace/ports.json"
port=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$demo/workspace/ports.json")
export TETHER_WORKSPACE=https://127.0.0.1:$port
export TETHER_TOKEN=$(cat "$demo/workspace/admin.token")
export TETHER_CA=$demo/workspace/tls.crt
echo "workspace: $TETHER_WORKSPACE (admin token in $demo/workspace/admin.token)"

say "registering an agent with a one-use token"
token=$("$cli" token create --uses 1 --ttl 10m)
cat >"$demo/agent.conf" <<CONF
state_dir = $demo/agent
name = quickstart-node
workspace = $TETHER_WORKSPACE
ca_file = $TETHER_CA
CONF
TETHER_CONFIG=$demo/agent.conf "$agent_bin" --token "$token" \
  >"$demo/agent.log" 2>&1 &
agent_pid=$!
wait_for 20 "the agent to register" test -s "$demo/agent/credentials"
"$cli" agents

say "submitting $spec with the directory examples/digits, following its log"
set +e
"$cli" submit "$spec" --dir examples/digits --follow 2>&1 | tee "$demo/follow.log"
rc=${PIPESTATUS[0]}
set -e
job=$(grep -o 'job [0-9]*' "$demo/follow.log" | head -n 1 | cut -d' ' -f2)
[ -n "$job" ] || { echo "quickstart: no job id in the submit output" >&2; exit 1; }

say "result of job $job"
"$cli" status "$job"
mkdir -p "$demo/outputs"
"$cli" outputs "$job" --download "$demo/outputs"
if [ "$rc" -ne 0 ]; then
  echo "quickstart: the job did not succeed (exit $rc); agent log: $demo/agent.log" >&2
  exit 1
fi
say "done"
echo "model:   $demo/outputs/model.pt"
echo "metrics: $demo/outputs/metrics.json ($(cat "$demo/outputs/metrics.json"))"
