#!/usr/bin/env bash
# Installs what the server (and, with --test, the test suite) needs; safe to run again.
# Python packages go into .venv, the browser's socket.io-client into node_modules, and
# with --test Debian's chromium, redis-server, postgresql and nginx for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PyICU (names that look alike) builds against the system's ICU.
if ! pkg-config --exists icu-i18n 2>/dev/null; then
  apt_install libicu-dev pkg-config g++
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extras=""
[ $want_tests = 1 ] && extras="[test]"
stamp=".venv/.installed$(echo "$extras" | tr -d '[]')-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
  touch "$stamp"
fi

if ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
lock_stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$lock_stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$lock_stamp"
fi

if [ $want_tests = 1 ]; then
  # Debian's packages for the browser and scale-out tests; the tests start their own
  # servers on loopback, so none of these services needs to be running.
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v redis-server >/dev/null || missing+=(redis-server)
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
fi
