#!/usr/bin/env bash
# A/B of two or more portcullis binaries: each binary in turn serves one `/**` route in front
# of the same echo-upstream, and wrk measures it; the binaries alternate for --rounds rounds so
# that drifts of a shared machine hit all of them alike. Prints each run's CPU µs per request
# (utime+stime of the gateway / requests) and, at the end, each binary's median per scenario.
# Scenarios: `none` (auth: none, proxied), `hs256` (a Bearer route, an HS256 token, the
# verified-token cache off, proxied), `hs256-cached` (the same with the cache on),
# `none-header` (auth: none carrying the same Authorization header: what carrying it costs),
# `401` (the Bearer route without a token: refused).
#
#   bash bench/ab.sh [--rounds N] [--duration S] [--scenarios "none hs256 401"] OLD NEW [MORE...]
#
# Needs wrk and a release echo-upstream (ECHO_UPSTREAM_BIN, default .build/release/echo-upstream).
# wrk and the upstream run on core 0, the gateway on core 1.
set -euo pipefail
ROUNDS=4
DURATION=5
SCENARIOS=none
while (($#)); do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

export AB_SECRET=0123456789abcdef0123456789abcdef
TOKEN=$(python3 - <<'PY'
import base64, hashlib, hmac, json, os
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
body = b64(json.dumps({"iss": "https://bench.local", "aud": "api", "sub": "bench", "exp": 4102444800}).encode())
sig = b64(hmac.new(os.environ["AB_SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)

# The configuration of scenario $1.
config() {
    local auth=bearer cache=0
    [[ "$1" == none || "$1" == none-header ]] && auth=none
    [[ "$1" == hs256-cached ]] && cache=10000
    printf '%s\n' \
        "version: 1" \
        "server: { listen: \"127.0.0.1:$GATEWAY\", admin_listen: \"\", access_log: \"off\" }" \
        "jwt:" \
        "  cache_size: $cache" \
        "  issuers:" \
        "    - { issuer: \"https://bench.local\", audiences: [api], algorithms: [HS256], keys: [{ kid: k1, secret_env: AB_SECRET }] }" \
        "upstreams: { u: { url: \"http://127.0.0.1:$UPSTREAM\" } }" \
        "routes:" \
        "  - { name: all, match: { path: \"/**\" }, auth: $auth, upstream: u }"
}

# A wrk script that sends scenario $1's Authorization header.
script() {
    if [[ "$1" == hs256* || "$1" == none-header ]]; then
        echo "wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\"" >"$TMP/$1.lua"
    else
        : >"$TMP/$1.lua"
    fi
    echo "$TMP/$1.lua"
}

TICK=$(getconf CLK_TCK)
declare -A RESULTS
for scenario in $SCENARIOS; do
    config "$scenario" >"$TMP/routes.yaml"
    lua=$(script "$scenario")
    for round in $(seq 1 "$ROUNDS"); do
        for binary in "$@"; do
            taskset -c 1 "$binary" serve --config "$TMP/routes.yaml" 2>/dev/null &
            pid=$!
            wait_port "$GATEWAY"
            taskset -c 0 wrk -t1 -c32 -d2s -s "$lua" "http://127.0.0.1:$GATEWAY/bench" >/dev/null
            before=$(cpu_ticks "$pid")
            out=$(taskset -c 0 wrk -t1 -c32 -d"${DURATION}s" -s "$lua" "http://127.0.0.1:$GATEWAY/bench")
            after=$(cpu_ticks "$pid")
            kill "$pid"; wait "$pid" 2>/dev/null || true
            requests=$(awk '/requests in/{print $1}' <<<"$out")
            if [[ "$scenario" != 401 ]] && grep -q "Non-2xx" <<<"$out"; then
                echo "ab.sh: $binary answered $scenario requests with errors:" >&2; grep "Non-2xx" <<<"$out" >&2; exit 1
            fi
            cpu=$(python3 -c "print(round(($after - $before) / $TICK * 1e6 / $requests, 1))")
            echo "$scenario  round $round  $binary  $(awk '/Requests\/sec/{print $2}' <<<"$out") req/s  $cpu µs/req"
            RESULTS["$scenario $binary"]+="$cpu "
        done
    done
done
echo
for scenario in $SCENARIOS; do
    for binary in "$@"; do
        median=$(python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 2))" ${RESULTS["$scenario $binary"]})
        echo "$scenario  median $median µs/req  $binary"
    done
done
