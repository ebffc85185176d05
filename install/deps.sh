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
  libpcre2-dev  # the metrics regex (common/jobspec-metrics.c, runner/supervisor/metrics.c)
  protobuf-c-compiler libprotobuf-c-dev  # TensorBoard events (runner/metrics/tb-reader.c)
  # runtime tools used by the agent and its tests
  sqlite3 openssl openssh-server openssh-client docker.io debootstrap
  slurmctld slurmd slurm-client munge iptables nftables faketime
  python3 python3-venv python3-pip python3-torch python3-numpy python3-pytest python3-pytest-timeout python3-sklearn
  procps psmisc strace util-linux iproute2 xz-utils docker-registry apache2-utils
  bubblewrap valgrind clang libclang-rt-14-dev dpkg-dev file gzip tar
  chromium  # headless browser for the web page tests (tests/bb/test_web_*.py)
  qemu-system-x86 qemu-utils  # the VM tier's Debian 12 guests (tests/vm/)
  openjdk-17-jre-headless  # Spark's JVM (tests/bb/test_spark_*.py)
  openjdk-17-jdk-headless maven  # the tests' mini YARN (harness/yarn.py)
)

# Spark for the spark launcher's tests (tests/bb/harness/spark.py): the
# pyspark package from PyPI is a whole Spark distribution (spark-submit,
# spark-class, jars).  Its own venv, never the system python's packages.
SPARK_VENV=/opt/tether-spark
SPARK_PYPI=pyspark==3.5.3

# Hadoop's mini cluster (YARN) for the spark launcher's YARN test, from
# Maven Central (tests/bb/harness/yarn/pom.xml), into its own directory.
YARN_DIR=/opt/tether-yarn

install_yarn() {
  local pom
  pom="$(cd "$(dirname "$0")/.." && pwd)/tests/bb/harness/yarn/pom.xml"
  if ls "$YARN_DIR"/lib/hadoop-minicluster-3.3.4.jar >/dev/null 2>&1; then
    return 0
  fi
  local log
  log=$(mktemp /tmp/tether-deps-yarn.XXXXXX)
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$YARN_DIR/lib" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "install/deps.sh: mvn could not fetch Hadoop's mini cluster into $YARN_DIR (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
}

install_spark() {
  if [ -x "$SPARK_VENV/bin/python" ] &&
    "$SPARK_VENV/bin/python" -c 'import pyspark, sys; sys.exit(pyspark.__version__ != "3.5.3")' 2>/dev/null; then
    return 0
  fi
  local log
  log=$(mktemp /tmp/tether-deps-spark.XXXXXX)
  if ! { python3 -m venv "$SPARK_VENV" &&
    "$SPARK_VENV/bin/pip" install --no-cache-dir "$SPARK_PYPI"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "install/deps.sh: pip install $SPARK_PYPI into $SPARK_VENV failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
}

if [ "$(id -u)" -ne 0 ]; then
  echo "install/deps.sh: must run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_spark
  install_yarn
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/tether-deps.XXXXXX)
if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "install/deps.sh: apt-get failed installing: ${missing[*]} (full log: $log)" >&2
  exit 1
fi
# Debian starts services in postinst when it can; the tests start their own.
rm -f "$log"
install_spark
install_yarn
