#!/usr/bin/env bash
# CPU cost per request: plain SwiftNIO (nio-hello) vs Hummingbird 2 (hummingbird-hello).
# Server pinned to CPU 1, wrk pinned to CPU 0; server CPU time is read from /proc/PID/stat.
# Build first: swift build -c release --scratch-path "$PWD/.build-frameworks"
set -euo pipefail
cd "$(dirname "$0")"

BIN=${BIN:-$PWD/.build-frameworks/release}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-8s}
SERVER_CPU=1
CLIENT_CPU=0
SERVERS=(nio-hello hummingbird-hello)
declare -A PORT=([nio-hello]=18081 [hummingbird-hello]=18082)
HZ=$(getconf CLK_TCK)

# Every child (servers and wrk) runs in the background and is tracked here, so the trap can stop it.
PIDS=()
TMP=$(mktemp -d)
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {  # $1 = pid that has exited
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop() {  # $1 = pid started by this script
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

run_wrk() {  # $1 = duration, $2 = url, rest = extra wrk flags; output goes to $TMP/wrk.out
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$1" "${@:3}" "$2" >"$TMP/wrk.out" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid"
    forget "$pid"
}

for s in "${SERVERS[@]}"; do
    [[ -x $BIN/$s ]] || { echo "missing $BIN/$s (build it first, see README.md)" >&2; exit 1; }
done

# utime + stime (fields 14 and 15) of all threads of a process, in clock ticks.
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }  # drop "pid (comm) " so the field after comm (state, field 3) becomes $1
    set -- $stat
    echo $(( ${12} + ${13} ))
}

wait_ready() {  # $1 = pid, $2 = port
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || { echo "server exited during startup" >&2; exit 1; }
        curl -sf -o /dev/null "http://127.0.0.1:$2/bench" && return 0
        sleep 0.1
    done
    echo "server on port $2 did not answer within 10s" >&2
    exit 1
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

declare -A CPU_US RPS
printf '%-5s %-18s %12s %10s %10s %12s %8s\n' round server "req/s" p50 p99 "cpu_us/req" "cpu%"
for round in $(seq "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do
        port=${PORT[$s]}
        url="http://127.0.0.1:$port/bench"
        taskset -c "$SERVER_CPU" "$BIN/$s" "$port" >/dev/null &
        pid=$!
        PIDS+=("$pid")
        wait_ready "$pid" "$port"

        run_wrk "$WARMUP" "$url"
        before=$(cpu_ticks "$pid")
        run_wrk "$DURATION" "$url" --latency
        after=$(cpu_ticks "$pid")
        stop "$pid"
        out=$(<"$TMP/wrk.out")

        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        seconds=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' <<<"$out")
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
            echo "warning: $s reported errors:" >&2
            grep 'Non-2xx\|Socket errors' <<<"$out" >&2
        fi
        read -r us pct < <(awk -v d="$((after - before))" -v hz="$HZ" -v n="$requests" -v t="$seconds" \
            'BEGIN {printf "%.2f %.0f\n", (d / hz) * 1e6 / n, 100 * (d / hz) / t}')
        CPU_US[$s]+="$us "
        RPS[$s]+="$rps "
        printf '%-5s %-18s %12s %10s %10s %12s %7s%%\n' "$round" "$s" "$rps" "$p50" "$p99" "$us" "$pct"
    done
done

nio_cpu=$(median <<<"${CPU_US[nio-hello]}")
hb_cpu=$(median <<<"${CPU_US[hummingbird-hello]}")
echo
echo "Median over $ROUNDS rounds (wrk -t1 -c$CONNS -d$DURATION, server on CPU $SERVER_CPU, CLK_TCK=$HZ):"
printf '%-18s %12s %14s\n' server "req/s" "cpu_us/req"
printf '%-18s %12s %14s\n' nio-hello "$(median <<<"${RPS[nio-hello]}")" "$nio_cpu"
printf '%-18s %12s %14s\n' hummingbird-hello "$(median <<<"${RPS[hummingbird-hello]}")" "$hb_cpu"
awk -v h="$hb_cpu" -v n="$nio_cpu" 'BEGIN {printf "ratio hummingbird/nio (cpu_us/req): %.2f\n", h / n}'
