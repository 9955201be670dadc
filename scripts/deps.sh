#!/usr/bin/env bash
# deps.sh check|install — the Debian packages gqsa builds and tests on.
# check: install only what is missing (so `make test` works on a fresh machine); install: always.
set -euo pipefail
PKGS="build-essential pkg-config libopenblas-dev libhdf5-dev hdf5-tools libyaml-dev libsqlite3-dev sqlite3 \
libpcre2-dev libcjson-dev libcmocka-dev gnuplot-nox clang python3"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ "${1:-check}" = install ] || [ -n "$missing" ]; then
  [ -n "$missing" ] && echo "deps: installing:$missing" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ${missing:-$PKGS} >/dev/null
fi
