#!/usr/bin/env bash
# Set up Lockgate on a fresh Debian/Ubuntu machine with Python 3.11 and Java 17:
# the locked virtualenv (.venv, from uv.lock), the JDBC driver jars and, for the browser
# tests of the Airflow UI page, Chromium and its driver (Debian packages).
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3.11}
JARS=(/usr/share/java/postgresql.jar /usr/share/java/mariadb-java-client.jar /usr/share/java/sqlite-jdbc.jar)
APT_PACKAGES=(libpostgresql-jdbc-java libmariadb-java libxerial-sqlite-jdbc-java chromium chromium-driver)
BROWSER=(/usr/bin/chromium /usr/bin/chromedriver)

die() { echo "setup: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv)"
command -v java >/dev/null || die "java not found; install Java 17 (apt-get install openjdk-17-jre-headless)"
java -version 2>&1 | grep -qE 'version "(17|21)' || echo "setup: warning: Spark 4 is tested here with Java 17" >&2

# uv, pinned, in a private tools venv (never pip into the system Python).
if command -v uv >/dev/null && [ "$(uv --version | awk '{print $2}')" = "$UV_VERSION" ]; then
  UV=uv
else
  if [ ! -x .lockgate/tools/bin/uv ]; then
    "$PYTHON" -m venv .lockgate/tools
    .lockgate/tools/bin/pip install --quiet "uv==$UV_VERSION"
  fi
  UV=.lockgate/tools/bin/uv
fi
"$UV" sync --frozen --python "$PYTHON" --quiet ${LOCKGATE_SYNC_ARGS:-}

missing=()
for file in "${JARS[@]}" "${BROWSER[@]}"; do [ -e "$file" ] || missing+=("$file"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO=none; fi
  [ "$SUDO" = none ] && die "missing ${missing[*]}. Install them with: sudo apt-get install ${APT_PACKAGES[*]}"
  echo "setup: installing JDBC drivers and Chromium from Debian packages: ${APT_PACKAGES[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
  for file in "${JARS[@]}" "${BROWSER[@]}"; do [ -e "$file" ] || die "still missing $file after installing ${APT_PACKAGES[*]}"; done
fi
echo "setup: ready (.venv from uv.lock; JDBC jars in /usr/share/java; /usr/bin/chromium)"
