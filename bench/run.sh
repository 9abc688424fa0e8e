#!/usr/bin/env bash
# `make bench`: builds nothing itself; expects PORTCULLIS_BIN and ECHO_UPSTREAM_BIN (release).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py "$@"
