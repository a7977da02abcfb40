#!/bin/bash
# bench/run.sh - `make bench`: tlm's throughput, latency, CPU and memory on this machine,
# against nginx (the HTTP ceiling) and jansson (the parse ceiling), in one run.
#
#   bench/run.sh                 full run (10 to 12 minutes), results in bench/results/
#   BENCH_QUICK=1 bench/run.sh   smoke run (under 2 minutes), results in build/bench/results-quick/
#
# A full run (all sections, default results folder) also puts its tables into README.md
# between the lines <!-- bench:start --> and <!-- bench:end --> when both are there.
#
# What it does: installs the Debian packages it needs (scripts/deps.sh build bench), builds
# the optimised daemons in build/bench and the bench programs (bench/bench.mk), then runs,
# with the service (both daemons, or nginx) pinned to core BENCH_SVC_CPU and the load
# generator to core BENCH_LOAD_CPU:
#   json      floors: jansson parse-only ceiling on the 100- and 1-record batches
#             (bench/json_ceiling.c), appends to a new /dev/shm file (bench/write_floor.c)
#   http      wrk + bench/wrk/post.lua, batches of 1/10/100/1000 records at 1/32/256
#             connections, against tlm and against nginx `return 204` (bench/nginx.conf);
#             at the rate targets' points (1x32 100x32) also against bare libwebsockets
#             answering 204 (bench/lws_floor.c): what tlm's HTTP library costs by itself
#   ws        bench/ws_load.c streaming 100-record batches, N connections, window W
#   idle      1 000 and 10 000 authenticated idle WebSockets: the ingest's RSS per connection,
#             then HTTP 100 x 32 for up to 8 s while they stay open (what idle connections cost a busy ingest)
#   stall     the logshipper's stdout blocked for a while under load: peak RSS of both
#             daemons against the configured buffer bounds
# Every tlm point starts fresh daemons (clean RSS and CPU figures), fills the auth cache
# (one batch per token), measures, waits until the logshipper's written counter stops, then
# matches the stdout lines to the acknowledged batches (bench/benchlib.py check: none lost,
# no duplicate rid). GAuth calls per distinct token come from the double's /__stats.
#
# Figures are printed, never asserted. The exit status is 1 only when the bench could not
# run (a daemon did not start, a load generator failed) or a delivery check failed.
#
# Environment: BENCH_SECONDS (per point; 10, quick 2), BENCH_SVC_CPU (0), BENCH_LOAD_CPU (1),
# BENCH_PORT_BASE (21000, below the ephemeral port range: gauth +95, ingest +107, metrics
# +1107, nginx +80, lws_floor +81), BENCH_TOKENS (64),
# BENCH_WORK (/dev/shm/tlm-bench), BENCH_RESULTS, BENCH_KEEP=1 (keep the work folder),
# BENCH_ONLY="json http ws idle stall" (sections to run), BENCH_PROFILE=1 (adds perf profiles of
# both daemons under HTTP 100- and 1-record batches at 32 connections: profile-*.txt in the results),
# BENCH_HTTP_POINTS / BENCH_WS_POINTS / BENCH_PROFILE_POINTS ("100x32 1x256": batch x conns, or
# conns x window for ws, "ws64x8" for a WebSocket profile; default all points) run only those
# points, BENCH_PROFILE_STAT=1 (counts per record instead of samples), BENCH_PERF_HZ (499),
# BENCH_BUILD_DIR (build/bench) and BENCH_NO_BUILD=1 run daemons built elsewhere (A/B runs),
# BENCH_NGINX=0 (HTTP points against tlm only), BENCH_LWS_POINTS ("1x32 100x32"; "" for none:
# the HTTP points also run against bench/lws_floor.c), BENCH_INGEST_WRAP (a command the ingest runs
# under, e.g. valgrind --tool=callgrind: instruction counts for A/B),
# BENCH_NOISE_PCT (10) / BENCH_NOISE_RETRY (1; quick 0): a point during which other processes
# took more than that share of the service's or the load generator's core is run once more.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

QUICK="${BENCH_QUICK:-0}"
[ "$QUICK" = 1 ] && DEF_SECONDS=2 || DEF_SECONDS=10
SECONDS_PER_POINT="${BENCH_SECONDS:-$DEF_SECONDS}"
SVC_CPU="${BENCH_SVC_CPU:-0}"
LOAD_CPU="${BENCH_LOAD_CPU:-1}"
BASE="${BENCH_PORT_BASE:-21000}"
GAUTH_PORT=$((BASE + 95))
TLM_PORT=$((BASE + 107))
METRICS_PORT=$((BASE + 1107))
NGINX_PORT=$((BASE + 80))
LWS_PORT=$((BASE + 81))
TOKENS="${BENCH_TOKENS:-64}"
NOISE_PCT="${BENCH_NOISE_PCT:-10}"
[ "$QUICK" = 1 ] && NOISE_RETRY="${BENCH_NOISE_RETRY:-0}" || NOISE_RETRY="${BENCH_NOISE_RETRY:-1}"
WORK="${BENCH_WORK:-/dev/shm/tlm-bench}"
ONLY="${BENCH_ONLY:-json http ws idle stall}"
if [ "$QUICK" = 1 ]; then RESULTS="${BENCH_RESULTS:-build/bench/results-quick}"
else RESULTS="${BENCH_RESULTS:-bench/results}"; fi
BUILD="${BENCH_BUILD_DIR:-build/bench}"
TOOLS=$BUILD/tools
PY=/usr/bin/python3
LIB="$PY $ROOT/bench/benchlib.py"
OUT="$WORK/tlm-bench.out"          # the logshipper's stdout
POINTS="$WORK/points"
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
TLM_URL="http://127.0.0.1:$TLM_PORT"
GAUTH_URL="http://127.0.0.1:$GAUTH_PORT"

# the service's configuration for the bench (buffer bounds explicit: the stall test reports against them)
export TELEMETRY_LISTEN=127.0.0.1
export TELEMETRY_PORT=$TLM_PORT
export TELEMETRY_METRICS_PORT=$METRICS_PORT
export TELEMETRY_SOCKET="$WORK/tlm.sock"
export TELEMETRY_CONFIG_SERVICE=env
export TELEMETRY_SERVICES_AUTH="$GAUTH_URL"
export TELEMETRY_AUTH_CLIENT_ID=tlm-bench
export TELEMETRY_AUTH_CLIENT_SECRET=bench-secret
export TELEMETRY_CONFIG_TENANTS='{"2868802f-1763-4ecd-94f6-203400001200":"pulse"}'
export TELEMETRY_BUFFER_MAX_BYTES="${TELEMETRY_BUFFER_MAX_BYTES:-134217728}"
export TELEMETRY_TRACES_THRESHOLD="${TELEMETRY_TRACES_THRESHOLD:-200000}"
export TELEMETRY_SHIPPER_BUFFER_BYTES="${TELEMETRY_SHIPPER_BUFFER_BYTES:-33554432}"
export TELEMETRY_MAX_SESSION="${TELEMETRY_MAX_SESSION:-20000}"   # 10 000 idle WebSockets + HTTP tokens
export TELEMETRY_MAX_CONNECTIONS="${TELEMETRY_MAX_CONNECTIONS:-20000}"
export APP_LOG_LEVEL="${APP_LOG_LEVEL:-warn}"
export API_LOG_LEVEL="${API_LOG_LEVEL:-error}"
export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"

say() { printf 'bench: %s\n' "$*" >&2; }
FAILED=0
fail() { say "FAILED: $*"; FAILED=1; }

# ---- processes: every one we start is tracked and stopped by pid ----
GAUTH_PID="" SHIP_PID="" INGEST_PID="" CAT_PID="" NGINX_PID="" LWS_PID="" MON_PID="" LOAD_PID="" STALL_PID=""
stop_pid() {   # stop_pid PID [SECONDS]: TERM, wait, then KILL
    local pid="$1" t="${2:-10}" i
    [ -n "$pid" ] || return 0
    kill -CONT "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for ((i = 0; i < t * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    trap '' INT TERM
    stop_pid "$STALL_PID" 1
    stop_pid "$LOAD_PID" 2
    stop_pid "$MON_PID" 2
    stop_tlm
    stop_pid "$NGINX_PID" 5
    stop_pid "$LWS_PID" 5
    stop_pid "$GAUTH_PID" 5
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

busy_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- tlm ----
stop_tlm() {
    stop_pid "$INGEST_PID" 25
    stop_pid "$SHIP_PID" 10
    stop_pid "$CAT_PID" 5
    INGEST_PID="" SHIP_PID="" CAT_PID=""
    rm -f "$WORK/tlm.sock"
}

# start_tlm [fifo] [VAR=value...]: fresh daemons, auth cache filled, empty stdout file.
# fifo: the logshipper writes into a pipe that `cat` empties into the file (the stall test
# stops cat to block the logshipper's stdout).
start_tlm() {
    local mode=file
    if [ "${1:-}" = fifo ]; then mode=fifo; shift; fi
    stop_tlm
    : >"$OUT"
    if [ $mode = fifo ]; then
        rm -f "$WORK/stdout.fifo"
        mkfifo "$WORK/stdout.fifo"
        taskset -c "$SVC_CPU" cat "$WORK/stdout.fifo" >>"$OUT" &
        CAT_PID=$!
        env "$@" taskset -c "$SVC_CPU" "$BUILD/tlm-logshipper" >"$WORK/stdout.fifo" 2>>"$WORK/logshipper.err" &
    else
        env "$@" taskset -c "$SVC_CPU" "$BUILD/tlm-logshipper" >>"$OUT" 2>>"$WORK/logshipper.err" &
    fi
    SHIP_PID=$!
    $LIB wait --url "http://127.0.0.1:$METRICS_PORT/health/live" --pid "$SHIP_PID" || { fail "logshipper did not start (see $WORK/logshipper.err)"; return 1; }
    # BENCH_INGEST_WRAP: a command the ingest runs under, e.g. "valgrind --tool=callgrind
    # --callgrind-out-file=/tmp/cg.%p" to count instructions per record (A/B of two builds
    # without this host's drift); it must keep the pid (exec)
    env "$@" taskset -c "$SVC_CPU" ${BENCH_INGEST_WRAP:-} "$BUILD/tlm-ingest" 2>>"$WORK/ingest.err" &
    INGEST_PID=$!
    $LIB wait --url "$TLM_URL/health/ready" --pid "$INGEST_PID" || { fail "ingest did not become ready (see $WORK/ingest.err)"; return 1; }
    $LIB gauth-stats --gauth "$GAUTH_URL" --reset
    $LIB warm --url "$TLM_URL" --tokens "$TOKENS" || { fail "warm-up batches were refused"; return 1; }
    $LIB settle --metrics "$METRICS_URL" --timeout 10 >/dev/null
    : >"$OUT"
    return 0
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

monitor_start() {   # monitor_start FILE NAME=PID...
    local f="$1"
    shift
    taskset -c "$LOAD_CPU" $LIB monitor --out "$f" --cpu "$SVC_CPU" --load-cpu "$LOAD_CPU" "$@" &
    MON_PID=$!
}
monitor_mark() { [ -n "$MON_PID" ] && kill -USR1 "$MON_PID" 2>/dev/null; return 0; }
monitor_stop() {
    [ -n "$MON_PID" ] || return 0
    kill -TERM "$MON_PID" 2>/dev/null
    wait "$MON_PID" 2>/dev/null
    MON_PID=""
}

kv() { printf '%s=%s\n' "$1" "$2"; }
# child_cpu FILE: CPU seconds (user + system) of this shell's waited-for children so far,
# from bash's `times` (run in this shell: a $(...) would count the subshell's children)
child_cpu() {
    times >"$1.times"
    awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1.times"
    rm -f "$1.times"
}
# noise_pct FILE: the larger share (%) other processes took of the service's or the load
# generator's core during the load
noise_pct() {
    awk -F= '{ v[$1] = $2 } END { l = 0; if (v["load_window_s"] > 0) l = v["load_task_pct"] - 100 * v["loadgen_cpu_s"] / v["load_window_s"];
        s = v["svc_other_pct"] + 0; if (l > s) s = l; if (s < 0) s = 0; printf "%.0f", s }' "$1"
}
rate() { awk -v a="${1:-0}" -v d="${2:-0}" 'BEGIN { if (d > 0) printf "%.0f", a / (d / 1e6); else printf "0" }'; }
ms() { awk -v u="${1:-0}" 'BEGIN { printf "%.2f", u / 1000 }'; }
getkv() { sed -n "s/^$2=//p" "$1" 2>/dev/null | tail -1; }   # getkv FILE KEY

# with_retry FUNC ARGS...: runs a point once more when other processes of the machine took
# more than NOISE_PCT % of the service's or the load generator's core during its load; keeps
# the quieter of the two (the other stays in the work folder as NNN-name.kv.noisy).
with_retry() {
    "$@"
    local first="$P" o o2
    [ -s "$P.kv" ] || return 0
    o=$(noise_pct "$P.kv")
    if [ "$NOISE_RETRY" = 1 ] && [ "$o" -gt "$NOISE_PCT" ]; then
        say "  noisy: other processes took $o % of a core; once more"
        "$@"
        o2=$(noise_pct "$P.kv")
        if [ -n "$o2" ] && [ "$o2" -le "$o" ]; then mv "$first.kv" "$first.kv.noisy"
        else mv "$P.kv" "$P.kv.noisy"; fi
    fi
}

POINT_NO=0
next_point() {   # next_point NAME: sets P (folder) and RUN (4 hex tag of the point)
    POINT_NO=$((POINT_NO + 1))
    RUN=$(printf '%04x' "$POINT_NO")
    P="$POINTS/$(printf '%03d' "$POINT_NO")-$1"
    mkdir -p "$P"
}

# ---- sections ----
# The floors: work every record costs whatever the service does, measured alone on the
# service's core: jansson parsing the 100-record batch with its default malloc (the ceiling
# of the tlm / ceiling ratio) and with a bump arena (the fastest jansson parse, as the ingest
# does it), the 1-record batch with the arena, and appending to a new file on /dev/shm (where
# the logshipper's stdout goes). A full run measures them before and after the HTTP points
# (run_json 1, run_json 2): the host's speed drifts, and report.py takes the faster of the two.
# The 100-record arena parse also times each parse on its own (--durations): how steady the
# host is, which bounds the p99 / p50 a saturated service can show here (report.py).
run_json() {
    local pass="${1:-1}" secs=$((SECONDS_PER_POINT < 5 ? SECONDS_PER_POINT : 5)) b arena
    for b in 100:0 100:1 1:1; do
        arena="${b#*:}" b="${b%:*}"
        next_point "json-b$b-a$arena-$pass"
        say "json: jansson parse-only ceiling, $b-record batch, $([ "$arena" = 1 ] && echo "arena" || echo "malloc"), core $SVC_CPU"
        { kv kind json; kv batch "$b"; kv pass "$pass"
          taskset -c "$SVC_CPU" "$TOOLS/json_ceiling" --payload "$WORK/p$b.json" --seconds "$secs" \
              $([ "$arena" = 1 ] && echo --arena) $([ "$b$arena" = 1001 ] && echo --durations "$P.durations")
        } >"$P.kv" || fail "json_ceiling"
        say "  $(getkv "$P.kv" records_per_s) records/s"
    done
    next_point "write-$pass"
    say "write: appending 64 KiB writes to a new file on /dev/shm, core $SVC_CPU"
    { kv kind write; kv pass "$pass"
      taskset -c "$SVC_CPU" "$TOOLS/write_floor" --file "$WORK/write-floor.out" --seconds "$secs"
    } >"$P.kv" || fail "write_floor"
    say "  $(getkv "$P.kv" mb_per_s) MB/s"
}

wrk_run() {   # wrk_run URL BATCH CONNS OKSTATUS SECONDS: figures in $P/wrk.kv, acked tags in $P/acked
    BENCH_PAYLOAD="$WORK/p$2.json" BENCH_RUN="$RUN" BENCH_TOKENS="$TOKENS" BENCH_OK="$4" \
        BENCH_ACKED="$P/acked" BENCH_SUMMARY="$P/wrk.kv" \
        taskset -c "$LOAD_CPU" wrk -t1 -c"$3" -d"$5"s --timeout 30s -s "$ROOT/bench/wrk/post.lua" "$1/" >"$P/wrk.txt" 2>&1 &
    LOAD_PID=$!
    local c0 c1 rc
    child_cpu "$P/cpu" >"$P/cpu0"
    wait "$LOAD_PID"
    rc=$?
    LOAD_PID=""
    child_cpu "$P/cpu" >"$P/cpu1"
    read -r c0 <"$P/cpu0"; read -r c1 <"$P/cpu1"
    kv loadgen_cpu_s "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')" >>"$P/wrk.kv"
    [ $rc = 0 ] && [ -s "$P/wrk.kv" ] || { fail "wrk ($P/wrk.txt)"; return 1; }
}

finish_tlm_point() {   # settle, stop the monitor, check lines against acks, GAuth calls
    local batch="$1" sent="$2"
    monitor_mark
    $LIB settle --metrics "$METRICS_URL" --timeout 60 >"$P/settle.kv"
    monitor_stop
    $LIB check --out "$OUT" --acked "$P/acked" --batch "$batch" --sent "$sent" >"$P/check.kv"
    $LIB gauth-stats --gauth "$GAUTH_URL" >"$P/gauth.kv"
    [ "$(getkv "$P/check.kv" check)" = ok ] || fail "delivery check of $P ($(tr '\n' ' ' <"$P/check.kv"))"
}

http_point() {   # http_point tlm|nginx|lws BATCH CONNS
    local server="$1" batch="$2" conns="$3"
    next_point "http-$server-b$batch-c$conns"
    if [ "$server" = tlm ]; then
        start_tlm || return 1
        monitor_start "$P/mon.kv" ingest="$INGEST_PID" shipper="$SHIP_PID"
        wrk_run "$TLM_URL" "$batch" "$conns" 202 "$SECONDS_PER_POINT"
        finish_tlm_point "$batch" "$(getkv "$P/wrk.kv" sent)"
        stop_tlm
    else   # nginx, or lws (bench/lws_floor.c): both answer 204 and keep nothing
        local pid=$NGINX_PID port=$NGINX_PORT
        [ "$server" = lws ] && { pid=$LWS_PID; port=$LWS_PORT; }
        monitor_start "$P/mon.kv" "$server=$pid"
        wrk_run "http://127.0.0.1:$port" "$batch" "$conns" 204 "$SECONDS_PER_POINT"
        monitor_mark
        monitor_stop
    fi
    { kv kind http; kv server "$server"; kv batch "$batch"; kv conns "$conns"
      cat "$P"/wrk.kv "$P"/mon.kv "$P"/check.kv "$P"/gauth.kv "$P"/settle.kv 2>/dev/null; } >"$P.kv"
    local acc chk=""
    if [ "$server" = tlm ]; then acc=$(getkv "$P.kv" accepted); chk="check $(getkv "$P.kv" check)"
    else acc=$(( $(getkv "$P.kv" ok) * batch )); fi
    say "  $(printf '%-5s %4s rec x %3s conns: %9s records/s  p50 %7s ms  p99 %7s ms  %s' "$server" "$batch" "$conns" \
        "$(rate "$acc" "$(getkv "$P.kv" duration_us)")" "$(ms "$(getkv "$P.kv" p50_us)")" "$(ms "$(getkv "$P.kv" p99_us)")" "$chk")"
}

wait_listening() {   # wait_listening PID PORT WHAT: up to 5 s for PID to listen on PORT
    local i
    for ((i = 0; i < 100; i++)); do
        busy_port "$2" && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    fail "$3 did not start"
    return 1
}

# bare libwebsockets, configured as the ingest is, answering 204 once writable (tlm answers
# after the logshipper's ack, from a writable callback): bench/lws_floor.c
start_lws() {
    taskset -c "$SVC_CPU" "$TOOLS/lws_floor" --port "$LWS_PORT" --answer writable >"$WORK/lws_floor.out" 2>&1 &
    LWS_PID=$!
    wait_listening "$LWS_PID" "$LWS_PORT" "lws_floor (see $WORK/lws_floor.out)"
}

start_nginx() {
    mkdir -p "$WORK/nginx"
    sed "s#@PORT@#$NGINX_PORT#; s#@DIR@#$WORK/nginx#g" bench/nginx.conf >"$WORK/nginx/nginx.conf"
    taskset -c "$SVC_CPU" nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/nginx-error.log" >>"$WORK/nginx/out.log" 2>&1 &
    NGINX_PID=$!
    wait_listening "$NGINX_PID" "$NGINX_PORT" "nginx (see $WORK/nginx)"
}

run_http() {
    local batches conns b c
    if [ -n "${BENCH_HTTP_POINTS:-}" ]; then
        set -- ${BENCH_HTTP_POINTS//x/ }
        local pairs=()
        while [ $# -ge 2 ]; do pairs+=("$1 $2"); shift 2; done
        set -- "${pairs[@]}"
    elif [ "$QUICK" = 1 ]; then
        set -- "100 1" "100 32" "1 32" "1000 32"
    else
        set --
        for b in 1 10 100 1000; do for c in 1 32 256; do set -- "$@" "$b $c"; done; done
    fi
    say "http: wrk batches against tlm and nginx, ${SECONDS_PER_POINT}s a point"
    local nginx="${BENCH_NGINX:-1}"   # BENCH_NGINX=0: tlm points only (A/B runs of two builds)
    local lws_points=" ${BENCH_LWS_POINTS-1x32 100x32} "
    [ "$nginx" = 1 ] && { start_nginx || return 1; }
    [ -n "${lws_points// /}" ] && { start_lws || return 1; }
    for bc in "$@"; do
        read -r b c <<<"$bc"
        with_retry http_point tlm "$b" "$c"
        [ "$nginx" = 1 ] && with_retry http_point nginx "$b" "$c"
        case "$lws_points" in *" ${b}x$c "*) with_retry http_point lws "$b" "$c" ;; esac
    done
    [ "$nginx" = 1 ] && stop_pid "$NGINX_PID" 5
    stop_pid "$LWS_PID" 5
    NGINX_PID="" LWS_PID=""
}

ws_point() {   # ws_point CONNS WINDOW
    local conns="$1" window="$2" batch=100
    next_point "ws-c$conns-w$window"
    start_tlm || return 1
    monitor_start "$P/mon.kv" ingest="$INGEST_PID" shipper="$SHIP_PID"
    taskset -c "$LOAD_CPU" "$TOOLS/ws_load" --port "$TLM_PORT" --payload "$WORK/p$batch.json" --conns "$conns" \
        --window "$window" --duration "$SECONDS_PER_POINT" --tokens "$TOKENS" --run "$RUN" \
        --acked "$P/acked" --summary "$P/ws.kv" >"$P/ws.txt" 2>&1 &
    LOAD_PID=$!
    local c0 c1
    child_cpu "$P/cpu" >"$P/cpu0"
    wait "$LOAD_PID" || fail "ws_load ($P/ws.txt)"
    LOAD_PID=""
    child_cpu "$P/cpu" >"$P/cpu1"
    read -r c0 <"$P/cpu0"; read -r c1 <"$P/cpu1"
    kv loadgen_cpu_s "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')" >>"$P/ws.kv"
    finish_tlm_point "$batch" "$(getkv "$P/ws.kv" sent)"
    stop_tlm
    { kv kind ws; kv server tlm; kv batch "$batch"; kv conns "$conns"; kv window "$window"
      cat "$P"/ws.kv "$P"/mon.kv "$P"/check.kv "$P"/gauth.kv "$P"/settle.kv 2>/dev/null; } >"$P.kv"
    say "  $(printf 'ws %4s conns window %2s: %9s records/s  ack p50 %7s ms  p99 %7s ms  check %s' "$conns" "$window" \
        "$(rate "$(getkv "$P.kv" accepted)" "$(getkv "$P.kv" duration_us)")" \
        "$(ms "$(getkv "$P.kv" p50_us)")" "$(ms "$(getkv "$P.kv" p99_us)")" "$(getkv "$P.kv" check)")"
}

# BENCH_PROFILE_STAT=1: counts instead of samples (perf stat: CPU ms, syscalls, context
# switches, page faults of each daemon per 1000 records), precise enough to compare two
# builds or two loads run one after the other. BENCH_FAULTS=1 also records where the ingest's
# page faults come from ($WORK/faults.data; keep it with BENCH_KEEP=1).
profile_counts() {   # profile_counts LOAD_PID WHAT OUT
    local w="$1" what="$2" out="$3" secs=$((SECONDS_PER_POINT > 3 ? SECONDS_PER_POINT - 2 : 1)) fp=""
    if [ "${BENCH_FAULTS:-0}" = 1 ]; then
        perf record -e page-faults --call-graph dwarf,16384 -p "$INGEST_PID" -o "$WORK/faults.data" \
            -- sleep "$secs" >/dev/null 2>&1 &
        fp=$!
    fi
    perf stat --per-thread -e task-clock,raw_syscalls:sys_enter,context-switches,page-faults \
        -p "$INGEST_PID,$SHIP_PID" -o "$P/stat.txt" -- sleep "$secs"
    [ -n "$fp" ] && wait "$fp"
    wait "$w"
    stop_tlm
    { echo "# counts per 1000 records: $what (tlm $(getkv "$WORK/meta.kv" git)); $(getkv "$P/wrk.kv" accepted) records in the load"
      $PY - "$P/stat.txt" "$(getkv "$P/wrk.kv" accepted)" "$(getkv "$P/wrk.kv" duration_us)" "$secs" <<'PYEOF'
import sys
path, n, dur_us, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rec = n * secs / (dur_us / 1e6)        # records during the counted window, at the load's mean rate
for line in open(path):
    f = line.split()
    if len(f) >= 3 and f[0].startswith("tlm-") and float(f[1].replace(",", "")) > 0:
        v = float(f[1].replace(",", ""))
        print("%-22s %-28s %12.2f per 1000 records" % (f[0], f[2] if f[2] != "msec" else "task-clock ms", v * 1000 / rec))
PYEOF
    } | tee "$out"
}

# BENCH_PROFILE=1: where the service's CPU goes, for 100- and 1-record batches at 32
# connections (perf with DWARF call graphs; these loads are not in the tables: perf slows the
# daemons). Written to the results as profile-bN-cC.txt (BENCH_PROFILE_POINTS picks others).
profile_point() {   # profile_point BATCH CONNS, or profile_point ws CONNS WINDOW
    local batch="$1" conns="$2" f="$RESULTS/profile-b$1-c$2.txt" what="HTTP $1-record batches x $2 conns"
    [ "$batch" = ws ] && f="$RESULTS/profile-ws-c$2-w$3.txt" what="WebSocket 100-record batches x $2 conns, window $3"
    next_point "profile-b$batch-c$conns"
    start_tlm || return 1
    if [ "$batch" = ws ]; then
        taskset -c "$LOAD_CPU" "$TOOLS/ws_load" --port "$TLM_PORT" --payload "$WORK/p100.json" --conns "$conns" \
            --window "$3" --duration "$SECONDS_PER_POINT" --tokens "$TOKENS" --run "$RUN" \
            --acked "$P/acked" --summary "$P/wrk.kv" >"$P/ws.txt" 2>&1 &
    else
        wrk_run "$TLM_URL" "$batch" "$conns" 202 "$SECONDS_PER_POINT" &
    fi
    local w=$!
    sleep 1
    if [ "${BENCH_PROFILE_STAT:-0}" = 1 ]; then
        profile_counts "$w" "$what" "$RESULTS/stat-${f##*/profile-}"
        return 0
    fi
    perf record -F "${BENCH_PERF_HZ:-499}" --call-graph dwarf,16384 -p "$INGEST_PID,$SHIP_PID" -o "$WORK/perf.data" \
        -- sleep $((SECONDS_PER_POINT > 3 ? SECONDS_PER_POINT - 2 : 1)) >/dev/null 2>&1
    wait "$w"
    stop_tlm
    local rep="perf report -i $WORK/perf.data --stdio -g none"
    {
        echo "# where the service's CPU goes: $what (tlm $(getkv "$WORK/meta.kv" git), $(date -u +%F))"
        echo "# load under perf: $(getkv "$P/wrk.kv" accepted) records in $(getkv "$P/wrk.kv" duration_us) us"
        echo "# jansson has no symbols (no debug package): its internals show as libjansson addresses"
        echo; echo "## CPU share by process"
        $rep --no-children --sort comm 2>/dev/null | grep '%'
        echo; echo "## tlm-ingest, inclusive (a function and what it calls), top 45"
        $rep --comm tlm-ingest --children --sort sym 2>/dev/null | grep '%' | grep -v '\] 0x0000' | head -45
        echo; echo "## tlm-ingest, by library"
        $rep --comm tlm-ingest --no-children --sort dso 2>/dev/null | grep '%'
        echo; echo "## tlm-ingest, jansson by region (its exported symbols bound them: load.c lexer/parser"
        echo "## lies before json_loads, hashtable.c between json_unpack and json_object)"
        $rep --comm tlm-ingest --dsos libjansson.so.4.14.0 --no-children --sort sym 2>/dev/null | grep '%' |
            $PY -c '
import sys
t = {}
for line in sys.stdin:
    f = line.split()
    if len(f) < 3 or not f[2].startswith("0x"):
        continue
    a = int(f[2], 16)
    r = "load.c: lexer, parser" if 0x3a00 <= a < 0x57b0 else "hashtable.c: object keys" if 0x8180 <= a < 0x8960 else "other: values, strings, alloc"
    t[r] = t.get(r, 0) + float(f[0].rstrip("%"))
for r, v in sorted(t.items(), key=lambda x: -x[1]):
    print("    %6.2f%%  %s" % (v, r))'
        echo; echo "## tlm-ingest, self, top 30"
        $rep --comm tlm-ingest --no-children --sort dso,sym 2>/dev/null | grep '%' | head -30
        echo; echo "## tlm-logshipper, inclusive, top 25"
        $rep --comm tlm-logshipper --children --sort sym 2>/dev/null | grep '%' | grep -v '\] 0x0000' | head -25
    } >"$f"
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$WORK/perf.data"
    say "  profile of $batch-record batches: $f"
}

run_profile() {
    command -v perf >/dev/null || { say "profile: perf missing (Debian linux-perf): skipped"; return 0; }
    say "profile: perf of the daemons under wrk (not part of the tables)"
    local bc
    for bc in ${BENCH_PROFILE_POINTS:-100x32 1x32}; do
        case "$bc" in
            ws*) bc="${bc#ws}"; profile_point ws "${bc%x*}" "${bc#*x}" ;;   # wsCONNSxWINDOW
            *) profile_point "${bc%x*}" "${bc#*x}" ;;
        esac
    done
}

run_ws() {
    say "ws: ws_load streaming 100-record batches, ${SECONDS_PER_POINT}s a point"
    if [ -n "${BENCH_WS_POINTS:-}" ]; then
        local cw
        for cw in $BENCH_WS_POINTS; do with_retry ws_point "${cw%x*}" "${cw#*x}"; done
    elif [ "$QUICK" = 1 ]; then
        with_retry ws_point 64 8
    else
        with_retry ws_point 1 1
        with_retry ws_point 64 8
        with_retry ws_point 256 8
    fi
}

idle_point() {   # idle_point CONNS
    local conns="$1" i
    next_point "idle-c$conns"
    start_tlm || return 1
    sleep 1
    local in0 sh0 in1 sh1
    in0=$(rss_kb "$INGEST_PID"); sh0=$(rss_kb "$SHIP_PID")
    rm -f "$P/ready"
    taskset -c "$LOAD_CPU" "$TOOLS/ws_load" --port "$TLM_PORT" --idle --conns "$conns" --tokens "$TOKENS" \
        --run "$RUN" --ready "$P/ready" --hold 600 >"$P/ws.txt" 2>&1 &
    LOAD_PID=$!
    for ((i = 0; i < 1500; i++)); do
        [ -s "$P/ready" ] && break
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2   # the stats snapshot reaches the logshipper every second
    in1=$(rss_kb "$INGEST_PID"); sh1=$(rss_kb "$SHIP_PID")
    local sessions
    sessions=$($LIB metric --url "$METRICS_URL" --name tlm_ws_sessions --key ws_sessions)
    # the same service under load while the idle connections stay open: HTTP 100 x 32
    local idle_pid=$LOAD_PID busy_s=$((SECONDS_PER_POINT < 8 ? SECONDS_PER_POINT : 8))
    if [ -s "$P/ready" ]; then
        wrk_run "$TLM_URL" 100 32 202 "$busy_s" || { LOAD_PID=$idle_pid; stop_pid "$LOAD_PID" 10; return 1; }
    fi
    LOAD_PID=$idle_pid
    stop_pid "$LOAD_PID" 10
    LOAD_PID=""
    [ -s "$P/ready" ] || fail "idle connections not ready ($P/ws.txt)"
    $LIB gauth-stats --gauth "$GAUTH_URL" >"$P/gauth.kv"
    stop_tlm
    { kv kind idle; kv server tlm; kv conns "$conns"
      cat "$P/ready" "$P/gauth.kv" 2>/dev/null
      echo "$sessions"
      kv ingest_rss_before_kb "$in0"; kv ingest_rss_after_kb "$in1"
      kv shipper_rss_before_kb "$sh0"; kv shipper_rss_after_kb "$sh1"
      sed -n 's/^\(duration_us\|ok\|accepted\|p50_us\|p99_us\)=/busy_\1=/p' "$P/wrk.kv" 2>/dev/null; } >"$P.kv"
    [ "$(getkv "$P.kv" authed)" = "$conns" ] || fail "idle: only $(getkv "$P.kv" authed) of $conns connections authenticated"
    say "  $(printf 'idle %5s conns: %s authed, ingest RSS %s -> %s kB (%s kB a connection)' "$conns" "$(getkv "$P.kv" authed)" \
        "$in0" "$in1" "$(awk -v a="$in0" -v b="$in1" -v n="$conns" 'BEGIN { printf "%.2f", (b - a) / n }')")"
    say "  $(printf 'and HTTP 100 x 32 alongside them: %s records/s, p50 %s us, p99 %s us' \
        "$(awk -v a="$(getkv "$P.kv" busy_accepted)" -v d="$(getkv "$P.kv" busy_duration_us)" 'BEGIN { printf "%.0f", a / d * 1e6 }')" \
        "$(getkv "$P.kv" busy_p50_us)" "$(getkv "$P.kv" busy_p99_us)")"
}

run_idle() {
    local hard
    hard=$(ulimit -Hn)
    say "idle: authenticated idle WebSockets (open files limit $(ulimit -n), hard $hard)"
    idle_point 1000
    if [ "$QUICK" != 1 ]; then
        if [ "$hard" != unlimited ] && [ "$hard" -lt 10100 ]; then
            say "  10000 idle connections need an open files limit above 10100 (hard limit $hard): skipped"
        else
            idle_point 10000
        fi
    fi
}

run_stall() {
    # 256 connections x 1000 records keep 256 000 records in flight: more than
    # TELEMETRY_TRACES_THRESHOLD, so a stall fills the ingest's buffer to its bound
    local t1 t2 t3 batch=1000 conns=256
    if [ "$QUICK" = 1 ]; then t1=1 t2=3 t3=3; else t1=5 t2=10 t3=10; fi
    next_point "stall-b$batch-c$conns"
    say "stall: wrk $batch-record batches x $conns conns; stdout blocked from ${t1}s to $((t1 + t2))s, then $t3 s to recover"
    start_tlm fifo || return 1
    monitor_start "$P/mon.kv" ingest="$INGEST_PID" shipper="$SHIP_PID"
    # the stall, beside the load: cat (the reader of the logshipper's stdout) stopped for t2 s
    (sleep "$t1"; kill -STOP "$CAT_PID"; sleep "$t2"; kill -CONT "$CAT_PID") &
    STALL_PID=$!
    wrk_run "$TLM_URL" "$batch" "$conns" 202 $((t1 + t2 + t3))
    wait "$STALL_PID"
    STALL_PID=""
    finish_tlm_point "$batch" "$(getkv "$P/wrk.kv" sent)"
    stop_tlm
    { kv kind stall; kv server tlm; kv batch "$batch"; kv conns "$conns"; kv stall_s "$t2"; kv load_s $((t1 + t2 + t3))
      kv buffer_max_bytes "$TELEMETRY_BUFFER_MAX_BYTES"; kv traces_threshold "$TELEMETRY_TRACES_THRESHOLD"
      kv shipper_buffer_bytes "$TELEMETRY_SHIPPER_BUFFER_BYTES"
      cat "$P"/wrk.kv "$P"/mon.kv "$P"/check.kv "$P"/gauth.kv "$P"/settle.kv 2>/dev/null; } >"$P.kv"
    say "  peak RSS ingest $(getkv "$P.kv" ingest_rss_peak_kb) kB, logshipper $(getkv "$P.kv" shipper_rss_peak_kb) kB; answers: $(getkv "$P.kv" ok) x 202, $(getkv "$P.kv" non_ok_codes); check $(getkv "$P.kv" check)"
}

# ---- main ----
say "installing what is missing, building (optimised, $BUILD)"
scripts/deps.sh build bench || exit 1
[ "${BENCH_NO_BUILD:-0}" = 1 ] || make --no-print-directory BUILD="$BUILD" all >/dev/null || { say "build failed"; exit 1; }
make --no-print-directory -f bench/bench.mk BENCH_BUILD="$BUILD" >/dev/null || { say "bench tools build failed"; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null
for port in "$GAUTH_PORT" "$TLM_PORT" "$METRICS_PORT" "$NGINX_PORT" "$LWS_PORT"; do
    busy_port "$port" && { say "127.0.0.1:$port is in use (another bench?); set BENCH_PORT_BASE"; exit 1; }
done
rm -rf "$WORK"
mkdir -p "$WORK" "$POINTS" "$RESULTS" || exit 1
for n in 1 10 100 1000; do $PY bench/payload.py --records "$n" --out "$WORK/p$n.json" || exit 1; done
$LIB users --out "$WORK/users.json" --count "$TOKENS" || exit 1

{   # the machine and the software, for the report
    kv date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    kv git "$(git rev-parse --short HEAD 2>/dev/null || echo -)$(git diff --quiet HEAD -- ingest logshipper common proto 2>/dev/null || echo +changes)"
    kv cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    kv cores "$(nproc)"
    kv mem_gib "$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
    kv kernel "$(uname -r)"
    kv os "$(. /etc/os-release && echo "$PRETTY_NAME")"
    kv lws "$(pkg-config --modversion libwebsockets)"
    kv jansson "$(pkg-config --modversion jansson)"
    kv wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    kv nginx "$(nginx -v 2>&1 | sed 's#.*/##')"
    kv cflags "-O2 -g (make all)"
    kv quick "$QUICK"
    kv seconds "$SECONDS_PER_POINT"
    kv tokens "$TOKENS"
    kv svc_cpu "$SVC_CPU"
    kv load_cpu "$LOAD_CPU"
    kv loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    kv record_bytes "$(( $(wc -c <"$WORK/p100.json") / 100 + 12 ))"
    kv line_bytes_approx 470
} >"$WORK/meta.kv"

taskset -c "$LOAD_CPU" $PY e2e/gauth/gauth_double.py --port "$GAUTH_PORT" --users "$WORK/users.json" --quiet \
    >"$WORK/gauth.out" 2>"$WORK/gauth.err" &
GAUTH_PID=$!
$LIB wait --url "$GAUTH_URL/auth/v3/ping" --pid "$GAUTH_PID" || { fail "GAuth double did not start"; cleanup; exit 1; }

T0=$(date +%s)
[ "${BENCH_PROFILE:-0}" = 1 ] && ONLY="$ONLY profile"
wanted() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
for section in json http ws idle stall profile; do
    wanted "$section" || continue
    "run_$section"
    # the floors once more after the HTTP points they bound (the host's speed drifts)
    if [ "$section" = http ] && wanted json; then run_json 2; fi
done
kv loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/meta.kv"
kv elapsed_s $(( $(date +%s) - T0 )) >>"$WORK/meta.kv"

readme=()   # a full run with the default results folder refreshes the README's Performance section
if [ "$QUICK" != 1 ] && [ "$RESULTS" = bench/results ] && [ "${BENCH_ONLY:-}" = "" ]; then readme=(--readme README.md); fi
$PY bench/report.py --points "$POINTS" --meta "$WORK/meta.kv" --results "$RESULTS" "${readme[@]}" || fail "report"
cleanup
say "done in $(( $(date +%s) - T0 )) s: $RESULTS/latest.md, $RESULTS/latest.png, $RESULTS/latest.csv"
[ "$FAILED" = 0 ] || say "some points failed (see the messages above)"
exit "$FAILED"
