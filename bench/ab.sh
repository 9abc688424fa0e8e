#!/usr/bin/env bash
# A/B of two or more portcullis binaries on the auth: none proxy path: each binary in turn
# serves one `/**` route in front of the same echo-upstream, and wrk measures it; the binaries
# alternate for --rounds rounds so that drifts of a shared machine hit all of them alike.
# Prints each run's CPU µs per request (utime+stime of the gateway / requests) and, at the end,
# each binary's median.
#
#   bash bench/ab.sh [--rounds N] [--duration S] OLD_BINARY NEW_BINARY [MORE...]
#
# Needs wrk and a release echo-upstream (ECHO_UPSTREAM_BIN, default .build/release/echo-upstream).
# wrk and the upstream run on core 0, the gateway on core 1.
set -euo pipefail
ROUNDS=4
DURATION=5
while (($#)); do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
done
(($# >= 2)) || { echo "ab.sh: name at least two binaries (try --help)" >&2; exit 2; }
ECHO="${ECHO_UPSTREAM_BIN:-.build/release/echo-upstream}"
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

UPSTREAM=$(free_port)
taskset -c 0 "$ECHO" --listen "127.0.0.1:$UPSTREAM" >/dev/null &
PIDS+=($!)
wait_port "$UPSTREAM"
GATEWAY=$(free_port)
cat >"$TMP/routes.yaml" <<EOF
version: 1
server: { listen: "127.0.0.1:$GATEWAY", admin_listen: "", access_log: "off" }
upstreams: { u: { url: "http://127.0.0.1:$UPSTREAM" } }
routes:
  - { name: all, match: { path: "/**" }, auth: none, upstream: u }
EOF

TICK=$(getconf CLK_TCK)
declare -A RESULTS
for round in $(seq 1 "$ROUNDS"); do
    for binary in "$@"; do
        taskset -c 1 "$binary" serve --config "$TMP/routes.yaml" 2>/dev/null &
        pid=$!
        wait_port "$GATEWAY"
        taskset -c 0 wrk -t1 -c32 -d2s "http://127.0.0.1:$GATEWAY/bench" >/dev/null
        before=$(cpu_ticks "$pid")
        out=$(taskset -c 0 wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$GATEWAY/bench")
        after=$(cpu_ticks "$pid")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        requests=$(awk '/requests in/{print $1}' <<<"$out")
        cpu=$(python3 -c "print(round(($after - $before) / $TICK * 1e6 / $requests, 1))")
        echo "round $round  $binary  $(awk '/Requests\/sec/{print $2}' <<<"$out") req/s  $cpu µs/req"
        RESULTS[$binary]+="$cpu "
    done
done
echo
for binary in "$@"; do
    echo "median $(python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" ${RESULTS[$binary]}) µs/req  $binary"
done
