#!/usr/bin/env bash
# Portcullis against nginx: the echo upstream alone, nginx in front of it, and Portcullis
# (auth: none) in front of it, one after another in the same run, with the same wrk settings.
# The primary figure is the proxy's CPU time per request; see bench/README.md.
#
# Needs PORTCULLIS_BIN and ECHO_UPSTREAM_BIN (release builds, as `make bench` sets them), nginx
# and wrk. Options:
#   --duration S      seconds measured per scenario (default 10), after --warmup S (default 2)
#   --connections N   wrk connections (default 32); wrk always runs one thread (-t1)
#   --rounds N        run every scenario N times (default 3, about 55 s each) and report,
#                     per scenario, the round with the median CPU per request
#   --no-pin          do not pin processes to cores with taskset
#   --browser-headers every request also carries eight headers a browser sends (User-Agent,
#                     Accept, Accept-Language, Accept-Encoding, Cookie, Referer, Cache-Control
#                     and one custom header, about 400 bytes): what each proxy pays per header
# Prints the table and writes it to bench/results/latest.txt. Runs everything on loopback
# ports of its own, from a temporary directory it removes; a trap stops every process it
# started, also on error or Ctrl-C.
set -euo pipefail
ME="$(basename "$0")"

DURATION=10
WARMUP=2
CONNECTIONS=32
ROUNDS=3
PIN=1
CLIENT_HEADERS=()
while (($#)); do
    case "$1" in
        --duration | --warmup | --connections | --rounds)
            (($# >= 2)) || { echo "$ME: $1 needs a value" >&2; exit 2; }
            [[ "$2" =~ ^[0-9]+$ ]] || { echo "$ME: $1 '$2' is not a whole number" >&2; exit 2; }
            case "$1" in
                --duration) DURATION="$2" ;;
                --warmup) WARMUP="$2" ;;
                --connections) CONNECTIONS="$2" ;;
                --rounds) ROUNDS="$2" ;;
            esac
            shift 2
            ;;
        --no-pin) PIN=0; shift ;;
        --browser-headers)
            CLIENT_HEADERS=(
                -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
                -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
                -H "Accept-Language: en-US,en;q=0.9"
                -H "Accept-Encoding: gzip, deflate, br"
                -H "Cookie: session=abcdef0123456789; theme=dark"
                -H "Referer: https://example.com/page"
                -H "Cache-Control: no-cache"
                -H "X-Client-Version: 4.2.1"
            )
            shift
            ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "$ME: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
((DURATION >= 1 && CONNECTIONS >= 1 && ROUNDS >= 1)) || { echo "$ME: --duration, --connections and --rounds must be at least 1" >&2; exit 2; }

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
: "${PORTCULLIS_BIN:?must name the release portcullis binary (make bench sets it)}"
: "${ECHO_UPSTREAM_BIN:?must name the release echo-upstream binary (make bench sets it)}"
for binary in "$PORTCULLIS_BIN" "$ECHO_UPSTREAM_BIN"; do
    [[ -x "$binary" ]] || { echo "$ME: $binary is not an executable (swift build -c release)" >&2; exit 1; }
done
NGINX_BIN="$(command -v nginx || true)"
for candidate in /usr/sbin/nginx /usr/local/sbin/nginx; do
    [[ -z "$NGINX_BIN" && -x "$candidate" ]] && NGINX_BIN="$candidate"
done
[[ -n "$NGINX_BIN" ]] || { echo "$ME: nginx not found (Debian: apt-get install nginx-light)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "$ME: wrk not found (Debian: apt-get install wrk)" >&2; exit 1; }

CLK_TCK="$(getconf CLK_TCK)"
CORES="$(nproc)"
LOAD_PIN=()
PROXY_PIN=()
if ((PIN)) && command -v taskset >/dev/null && ((CORES >= 2)); then
    LOAD_PIN=(taskset -c 0)
    PROXY_PIN=(taskset -c 1)
    PINNING="wrk and echo-upstream pinned to core 0, the proxy under test to core 1 (taskset)"
else
    PINNING="no CPU pinning (every process may run on any of the $CORES cores)"
fi

# --- processes and cleanup -----------------------------------------------------------------

TMP="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")"
chmod 755 "$TMP"  # nginx workers may run as another user; nothing secret lives here
PIDS=()           # every process this script started and has not stopped (nginx workers too)

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "$ME: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

say() { echo "$*" >&2; }
die() { echo "$ME: $*" >&2; exit 1; }

# forget PIDS...: takes processes that have ended off the list the cleanup stops.
forget() {
    local pid keep=()
    for pid in "${PIDS[@]}"; do
        [[ " $* " == *" $pid "* ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# stop PID [MORE_PIDS...]: SIGTERM to PID, SIGKILL to all of them after 10 s, then forgets them.
stop() {
    local pid
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait "$1" 2>/dev/null || true
    forget "$@"
}

# A loopback port below the ephemeral range that nothing listens on.
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free loopback port found"
}

# wait_listen PID PORT LOG: until PID listens on PORT (10 s at most); shows LOG if it dies first.
wait_listen() {
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || { tail -n 20 "$3" >&2; die "process $1 exited before listening on port $2"; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return; fi
        sleep 0.1
    done
    tail -n 20 "$3" >&2
    die "nothing listens on 127.0.0.1:$2 after 10 s"
}

# The status code of one GET over HTTP/1.0, by bash alone.
http_status() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    IFS= read -r -t 5 line <&3 || line=""
    exec 3<&- 3>&-
    line="${line#HTTP/1.? }"
    echo "${line%% *}"
}

# utime + stime (fields 14 and 15 of /proc/PID/stat: every thread of the process) of the
# PIDs, in clock ticks.
cpu_ticks() {
    local total=0 pid stat fields
    for pid in "$@"; do
        stat="$(<"/proc/$pid/stat")" || die "process $pid is gone"
        read -ra fields <<<"${stat##*) }"  # fields[0] is field 3 (state)
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

children() {
    if command -v pgrep >/dev/null; then
        pgrep -P "$1" || true
    else
        local stat fields dir
        for dir in /proc/[0-9]*; do
            stat="$(<"$dir/stat")" 2>/dev/null || continue
            read -ra fields <<<"${stat##*) }"
            if [[ "${fields[1]}" == "$1" ]]; then echo "${dir#/proc/}"; fi
        done
    fi
}

# rss_kib PID [FIELD]: VmRSS (or another field, such as RssAnon) from /proc/PID/status, in KiB.
rss_kib() { awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$1/status"; }

# Busy ticks of the whole machine (user nice system irq softirq steal), from /proc/stat.
machine_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# CPU time of this shell's finished children (wrk among them), in clock ticks. `times` has to
# run in this shell, not in a $(...) subshell, which has children of its own: call it with a
# redirection.
children_ticks() {
    times >"$TMP/times.txt"
    awk -v hz="$CLK_TCK" 'NR == 2 {
        for (i = 1; i <= NF; i++) { split($i, ms, "m"); sub(/s$/, "", ms[2]); s += ms[1] * 60 + ms[2] }
    } END { printf "%.0f\n", s * hz }' "$TMP/times.txt"
}

# --- measuring -----------------------------------------------------------------------------

# run_wrk PORT SECONDS OUTFILE: wrk with the run's settings, pinned with the upstream. It runs
# in the background and the shell waits for it, so that Ctrl-C runs the trap at once (bash
# defers traps while a foreground command runs, and wrk exits normally on SIGINT).
run_wrk() {
    local pid rc=0
    "${LOAD_PIN[@]}" timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2"s --latency ${CLIENT_HEADERS[@]+"${CLIENT_HEADERS[@]}"} \
        "http://127.0.0.1:$1/bench" >"$3" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget "$pid"
    ((rc == 0)) || { cat "$3" >&2; die "wrk failed (exit status $rc) against port $1"; }
}

# percentile_ms WRK_OUTPUT 99%: a latency percentile from wrk --latency, in milliseconds.
percentile_ms() {
    awk -v p="$2" '$1 == p {
        v = $2
        if (sub(/us$/, "", v)) v /= 1000; else if (sub(/ms$/, "", v)) v += 0; else if (sub(/m$/, "", v)) v *= 60000; else if (sub(/s$/, "", v)) v *= 1000
        printf "%.3f", v; exit
    }' "$1"
}

per_request_us() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }'; }

ROWS=()  # one per measured run: "round|name|rps|p50|p99|cpu_us|upstream_us|other_pct|note"

# measure NAME PORT "PROXY PIDS": a warm-up run, then the measured run. Records the proxy's and
# the upstream's CPU per request over the measured run, and how much CPU everything else on
# the machine used meanwhile (% of one core: busy time from /proc/stat less the proxy, the
# upstream and wrk). That last figure is the noise indicator: on a shared machine, any other
# load skews a loopback benchmark, and nginx's figures more than Portcullis's.
measure() {
    local name="$1" port="$2" pids="$3" out="$TMP/wrk-$((${#ROWS[@]} + 1)).txt" status
    status="$(http_status "$port" /bench)"
    [[ "$status" == 200 ]] || die "$name: GET /bench answered '$status', not 200"
    say "  $name: ${WARMUP}s warm-up, ${DURATION}s measured"
    if ((WARMUP > 0)); then run_wrk "$port" "$WARMUP" "$TMP/warmup.txt"; fi

    local proxy0 upstream0 machine0 start end machine1 proxy1 upstream1 wrk0 wrk1
    # shellcheck disable=SC2086
    proxy0="$(cpu_ticks $pids)"
    upstream0="$(cpu_ticks "$ECHO_PID")"
    machine0="$(machine_busy_ticks)"
    children_ticks >"$TMP/wrk0.txt"
    start="$EPOCHREALTIME"
    run_wrk "$port" "$DURATION" "$out"
    end="$EPOCHREALTIME"
    children_ticks >"$TMP/wrk1.txt"
    machine1="$(machine_busy_ticks)"
    # shellcheck disable=SC2086
    proxy1="$(cpu_ticks $pids)"
    upstream1="$(cpu_ticks "$ECHO_PID")"
    wrk0="$(<"$TMP/wrk0.txt")"
    wrk1="$(<"$TMP/wrk1.txt")"

    local requests rps p50 p99 non2xx errors note=""
    requests="$(awk '/ requests in / { print $1; exit }' "$out")"
    rps="$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")"
    p50="$(percentile_ms "$out" 50%)"
    p99="$(percentile_ms "$out" 99%)"
    [[ -n "$requests" && -n "$rps" && -n "$p50" && -n "$p99" ]] || { cat "$out" >&2; die "$name: cannot read wrk's output"; }
    ((requests > 0)) || die "$name: wrk completed no requests"
    non2xx="$(awk -F': ' '/Non-2xx or 3xx responses/ { print $2 }' "$out")"
    errors="$(awk '/Socket errors/ { sub(/^ *Socket errors: */, ""); print }' "$out")"
    if [[ -n "$non2xx" ]]; then note="$note ${non2xx} non-2xx!"; fi
    if [[ -n "$errors" ]]; then note="$note socket errors: $errors!"; fi

    local proxy=$((proxy1 - proxy0)) upstream=$((upstream1 - upstream0)) known other
    known=$((proxy + wrk1 - wrk0))
    [[ "$pids" == "$ECHO_PID" ]] || known=$((known + upstream))
    other="$(awk -v t=$((machine1 - machine0 - known)) -v hz="$CLK_TCK" -v s="$start" -v e="$end" \
        'BEGIN { o = t / hz / (e - s) * 100; printf "%.0f", (o < 0 ? 0 : o) }')"
    if ((other >= 10)); then note="$note busy machine!"; fi
    local cpu_us upstream_us
    cpu_us="$(per_request_us "$proxy" "$requests")"
    upstream_us="$(per_request_us "$upstream" "$requests")"
    ROWS+=("$ROUND|$name|$rps|$p50|$p99|$cpu_us|$upstream_us|$other|${note# }")
    say "    $(printf '%.0f' "$rps") req/s, p99 $p99 ms, $cpu_us µs CPU/request; other load ${other}% of a core${note:+;$note}"
}

# --- the processes under test --------------------------------------------------------------

# The upstream: echo-upstream (one event loop thread) on port 0, which it reports.
start_upstream() {
    "${LOAD_PIN[@]}" "$ECHO_UPSTREAM_BIN" --listen 127.0.0.1:0 >"$TMP/echo.log" 2>&1 &
    ECHO_PID=$!
    PIDS+=("$ECHO_PID")
    UPSTREAM_PORT=""
    for _ in $(seq 100); do
        UPSTREAM_PORT="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/echo.log" | head -n 1)"
        [[ -n "$UPSTREAM_PORT" ]] && break
        kill -0 "$ECHO_PID" 2>/dev/null || { cat "$TMP/echo.log" >&2; die "echo-upstream exited"; }
        sleep 0.1
    done
    [[ -n "$UPSTREAM_PORT" ]] || die "echo-upstream did not report its port in 10 s"
    wait_listen "$ECHO_PID" "$UPSTREAM_PORT" "$TMP/echo.log"
}

# start_nginx NAME EXTRA_DIRECTIVES: nginx as a keep-alive reverse proxy to the upstream, one
# worker, no access log, every path in $TMP. Sets NGINX_PORT, NGINX_PID and NGINX_WORKERS.
start_nginx() {
    local dir="$TMP/nginx-$1"
    NGINX_PORT="$(free_port)"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream echo {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";$2
        }
    }
}
NGINX
    "${PROXY_PIN[@]}" "$NGINX_BIN" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_listen "$NGINX_PID" "$NGINX_PORT" "$dir/error.log"
    NGINX_WORKERS="$(children "$NGINX_PID" | tr '\n' ' ')"
    [[ -n "${NGINX_WORKERS// /}" ]] || die "nginx has no worker processes"
    # shellcheck disable=SC2206
    PIDS+=($NGINX_WORKERS)
}

# The request headers Portcullis adds on its way to the upstream, and its X-Request-Id on the
# response, as nginx directives: the "nginx + same headers" scenario.
# shellcheck disable=SC2016
NGINX_SAME_HEADERS='
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Request-Id $request_id;
            add_header X-Request-Id $request_id always;'

# Portcullis with one auth: none route to the upstream. Sets PORTCULLIS_PORT, PORTCULLIS_PID.
start_portcullis() {
    PORTCULLIS_PORT="$(free_port)"
    cat >"$TMP/portcullis.yaml" <<YAML
version: 1
server:
  listen: "127.0.0.1:$PORTCULLIS_PORT"
  admin_listen: ""
  access_log: "off"
upstreams:
  echo:
    url: "http://127.0.0.1:$UPSTREAM_PORT"
routes:
  - name: open
    match: { path: "/**" }
    auth: none
    upstream: echo
YAML
    "${PROXY_PIN[@]}" "$PORTCULLIS_BIN" serve --config "$TMP/portcullis.yaml" >"$TMP/portcullis.log" 2>&1 &
    PORTCULLIS_PID=$!
    PIDS+=("$PORTCULLIS_PID")
    wait_listen "$PORTCULLIS_PID" "$PORTCULLIS_PORT" "$TMP/portcullis.log"
}

# --- the run -------------------------------------------------------------------------------

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
REV_AT_START="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || true)"
if [[ -n "$REV_AT_START" && -n "$(git -C "$REPO" status --porcelain -- Sources Package.swift 2>/dev/null)" ]]; then
    REV_AT_START="$REV_AT_START plus uncommitted changes in Sources/ or Package.swift"
fi
say "portcullis bench: wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency after a ${WARMUP}s warm-up, $ROUNDS round(s); $PINNING"
start_upstream
IDLE_RSS=0
IDLE_ANON=0
LOADED_RSS=0
LOADED_ANON=0
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    ((ROUNDS == 1)) || say "round $ROUND of $ROUNDS"

    # a. The floor: wrk straight at the upstream; the CPU column is the upstream's own.
    measure "echo-upstream direct" "$UPSTREAM_PORT" "$ECHO_PID"

    # b. nginx as a plain reverse proxy, as the issue configures it: the reference for the
    #    ratios. Then again with the headers Portcullis adds, so that nginx and the upstream
    #    handle the same bytes as with Portcullis.
    start_nginx plain ""
    measure "nginx proxy" "$NGINX_PORT" "$NGINX_PID $NGINX_WORKERS"
    # shellcheck disable=SC2086
    stop "$NGINX_PID" $NGINX_WORKERS
    start_nginx headers "$NGINX_SAME_HEADERS"
    measure "nginx + same headers" "$NGINX_PORT" "$NGINX_PID $NGINX_WORKERS"
    # shellcheck disable=SC2086
    stop "$NGINX_PID" $NGINX_WORKERS

    # c. Portcullis on an auth: none route; its memory idle (after start, before any load)
    #    and after the load. The largest of the rounds is reported.
    start_portcullis
    sleep 1
    rss="$(rss_kib "$PORTCULLIS_PID")"
    anon="$(rss_kib "$PORTCULLIS_PID" RssAnon)"
    if ((rss > IDLE_RSS)); then IDLE_RSS="$rss"; fi
    if ((anon > IDLE_ANON)); then IDLE_ANON="$anon"; fi
    PORTCULLIS_THREADS="$(find "/proc/$PORTCULLIS_PID/task" -mindepth 1 -maxdepth 1 | wc -l)"
    measure "portcullis auth: none" "$PORTCULLIS_PORT" "$PORTCULLIS_PID"
    rss="$(rss_kib "$PORTCULLIS_PID")"
    anon="$(rss_kib "$PORTCULLIS_PID" RssAnon)"
    if ((rss > LOADED_RSS)); then LOADED_RSS="$rss"; fi
    if ((anon > LOADED_ANON)); then LOADED_ANON="$anon"; fi
    stop "$PORTCULLIS_PID"
done

# --- the report ----------------------------------------------------------------------------

SCENARIOS=("echo-upstream direct" "nginx proxy" "nginx + same headers" "portcullis auth: none")
field() { local IFS='|' f; read -ra f <<<"$1"; echo "${f[$2]:-}"; }

# pick SCENARIO: sets PICKED_ROW to the row to report: of the scenario's quiet runs (other CPU
# under 10% of a core), or of all its runs if none was quiet, the one with the median CPU per
# request (the lower of the two middle ones for an even count). Sets SPREAD to "min-max" of
# the CPU per request over all its runs and QUIET to the number of quiet runs.
pick() {
    local r runs=() quiet=() sorted
    for r in "${ROWS[@]}"; do
        if [[ "$(field "$r" 1)" == "$1" ]]; then
            runs+=("$r")
            if (($(field "$r" 7) < 10)); then quiet+=("$r"); fi
        fi
    done
    sorted="$(printf '%s\n' "${runs[@]}" | sort -t'|' -k6,6g)"
    SPREAD="$(head -n 1 <<<"$sorted" | cut -d'|' -f6)-$(tail -n 1 <<<"$sorted" | cut -d'|' -f6)"
    QUIET=${#quiet[@]}
    if ((QUIET > 0)); then
        sorted="$(printf '%s\n' "${quiet[@]}" | sort -t'|' -k6,6g)"
        PICKED_ROW="$(sed -n "$(((QUIET + 1) / 2))p" <<<"$sorted")"
    else
        PICKED_ROW="$(sed -n "$(((${#runs[@]} + 1) / 2))p" <<<"$sorted")"
    fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

declare -A PICKED
TABLE=""
for scenario in "${SCENARIOS[@]}"; do
    pick "$scenario"
    row="$PICKED_ROW"
    PICKED["$scenario"]="$row"
    note="$(field "$row" 8)"
    ((ROUNDS == 1)) || note="round $(field "$row" 0) ($QUIET of $ROUNDS quiet), CPU $SPREAD${note:+; $note}"
    TABLE+="$(printf '%-22s %8.0f %7.2f %7.2f %11.1f %16.1f %9s%%  %s' "$scenario" "$(field "$row" 2)" \
        "$(field "$row" 3)" "$(field "$row" 4)" "$(field "$row" 5)" "$(field "$row" 6)" "$(field "$row" 7)" "$note")"$'\n'
done

# ratios NGINX_SCENARIO [VERDICT]: sets RATIOS to "CPU us/req X, req/s Y, p99 Z", Portcullis's figures
# over that nginx row's, and RATIO_CPU to X.
ratios() {
    local pc="${PICKED["portcullis auth: none"]}" ng="${PICKED["$1"]}"
    RATIO_CPU="$(ratio "$(field "$pc" 5)" "$(field "$ng" 5)")"
    RATIOS="CPU us/req $RATIO_CPU${2:-}, req/s $(ratio "$(field "$pc" 2)" "$(field "$ng" 2)"), p99 $(ratio "$(field "$pc" 4)" "$(field "$ng" 4)")"
}
ratios "nginx + same headers"
SAME_HEADERS_RATIOS="$RATIOS"
ratios "nginx proxy"
CPU_VERDICT="$(awk -v r="${RATIO_CPU%x}" 'BEGIN {
    if (r <= 1.25) print "meets the 1.25x aim"; else if (r <= 2) print "within the 2x target"; else print "MISSES the 2x target" }')"
ratios "nginx proxy" " ($CPU_VERDICT)"
PLAIN_RATIOS="$RATIOS"
BUSY_RUNS=0
for row in "${ROWS[@]}"; do
    if (($(field "$row" 7) >= 10)); then BUSY_RUNS=$((BUSY_RUNS + 1)); fi
done
BUSY_PICKED=0
for scenario in "${SCENARIOS[@]}"; do
    if (($(field "${PICKED["$scenario"]}" 7) >= 10)); then BUSY_PICKED=$((BUSY_PICKED + 1)); fi
done
RSS_VERDICT="$(awk -v k="$IDLE_RSS" 'BEGIN { print (k < 30 * 1024 ? "under" : "OVER") " the 30 MiB target" }')"

BUILD="portcullis binary built $(date -u -r "$PORTCULLIS_BIN" '+%F %H:%M UTC')"
if [[ -n "$(find "$REPO/Sources" "$REPO/Package.swift" -newer "$PORTCULLIS_BIN" 2>/dev/null | head -n 1)" ]]; then
    BUILD="$BUILD (older than some of Sources/ or Package.swift)"
fi
if [[ -n "$REV_AT_START" ]]; then BUILD="$BUILD; repository at $REV_AT_START when the run started"; fi

report() {
    echo "$(date -u '+%F %H:%M UTC'); $CORES cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r); load average before: $LOAD_BEFORE"
    echo "$BUILD"
    echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency after a ${WARMUP}s warm-up; $PINNING"
    if ((${#CLIENT_HEADERS[@]} > 0)); then echo "every request carries eight browser-like headers (--browser-headers)"; fi
    if ((ROUNDS > 1)); then echo "$ROUNDS rounds; each row: the round with the median CPU us/req of the quiet ones (other CPU < 10%), or of all"; fi
    echo "CPU us/req: utime+stime of the proxy (nginx: master + worker; direct: the upstream itself) / requests completed"
    echo "upstream: the same for echo-upstream; other CPU: everything else on the machine meanwhile, % of one core (noise)"
    echo
    printf '%-22s %8s %7s %7s %11s %16s %10s  %s\n' scenario "req/s" "p50 ms" "p99 ms" "CPU us/req" "upstream us/req" "other CPU" note
    printf '%s' "$TABLE"
    echo
    if ((BUSY_PICKED > 0)); then
        echo "WARNING: $BUSY_PICKED of the rows come from runs during which other work used >= 10% of a core: they are skewed; run again on a quiet machine"
    elif ((BUSY_RUNS > 0)); then
        echo "($BUSY_RUNS of the ${#ROWS[@]} measured runs were disturbed by other work; no row comes from them)"
    fi
    echo "portcullis RSS: idle $(mib "$IDLE_RSS") ($RSS_VERDICT), after load $(mib "$LOADED_RSS"); of which anonymous (heap, stacks): $(mib "$IDLE_ANON") and $(mib "$LOADED_ANON"); $PORTCULLIS_THREADS threads"
    echo "portcullis/(nginx + same headers): $SAME_HEADERS_RATIOS"
    echo "portcullis/nginx: $PLAIN_RATIOS"
}
mkdir -p "$BENCH_DIR/results"
report | sed 's/ us\/req/ µs\/req/g' | tee "$BENCH_DIR/results/latest.txt"
