#!/usr/bin/env bash
# What the test suite needs beyond the Python packages: node + npm (pusher-js and
# laravel-echo tests), redis-server (the cluster tests), systemd-analyze (the example
# unit is checked with `systemd-analyze verify`) and nginx (uvgate behind the example
# examples/nginx.conf). Installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The cluster tests run a real Redis (Debian 12: 7.0), started by the tests on free ports.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# /usr/sbin is not on every user's PATH.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing ${need[*]} and not root; install them and rerun" >&2
    exit 1
  fi
  apt-get update -qq
  # Debian starts a service it installs; nginx's would take port 80 (policy-rc.d 101:
  # do not start anything), the tests start their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# The JavaScript clients the tests drive, pinned by the lockfile.
if [ -f tests/js/package-lock.json ]; then
  if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
