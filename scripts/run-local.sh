#!/bin/bash
# run-local.sh - the service on this machine, for trying it by hand (`make run`).
# Starts the GAuth double, the logshipper and the ingest on loopback, waits until both
# answer /health/live, prints a curl command to paste, and stays in the foreground:
# the logshipper's stdout (one JSON line per record) and both daemons' stderr
# diagnostics appear in this terminal. Ctrl-C stops all three.
# Every value below can be overridden from the environment (any other TELEMETRY_*
# variable set in the environment reaches both daemons as is).
set -u
cd "$(dirname "$0")/.." || exit 1

BUILD="${BUILD:-build}"
PYTHON="${PYTHON:-/usr/bin/python3}"
TLM_RUN_DIR="${TLM_RUN_DIR:-/tmp/tlm-run}"
GAUTH_HOST="${GAUTH_HOST:-127.0.0.1}"
GAUTH_PORT="${GAUTH_PORT:-8095}"
GAUTH_USERS="${GAUTH_USERS:-e2e/gauth/users.json}"
DEV_TOKEN="${DEV_TOKEN:-dev-token}"
WAIT_SECONDS="${WAIT_SECONDS:-15}"

export TELEMETRY_LISTEN="${TELEMETRY_LISTEN:-127.0.0.1}"
export TELEMETRY_PORT="${TELEMETRY_PORT:-8107}"
export TELEMETRY_METRICS_PORT="${TELEMETRY_METRICS_PORT:-9107}"
export TELEMETRY_SOCKET="${TELEMETRY_SOCKET:-$TLM_RUN_DIR/tlm.sock}"
export TELEMETRY_CONFIG_SERVICE="${TELEMETRY_CONFIG_SERVICE:-env}"
export TELEMETRY_SERVICES_AUTH="${TELEMETRY_SERVICES_AUTH:-http://$GAUTH_HOST:$GAUTH_PORT}"
export TELEMETRY_AUTH_CLIENT_ID="${TELEMETRY_AUTH_CLIENT_ID:-tlm-local}"
export TELEMETRY_AUTH_CLIENT_SECRET="${TELEMETRY_AUTH_CLIENT_SECRET:-local-secret}"
default_tenants='{"2868802f-1763-4ecd-94f6-203400001200":"pulse"}'
default_cors='{"2868802f-1763-4ecd-94f6-203400001200":{"urls":["http://localhost:8080","http://127.0.0.1:8080"],"domains":[]}}'
export TELEMETRY_CONFIG_TENANTS="${TELEMETRY_CONFIG_TENANTS:-$default_tenants}"
export TELEMETRY_CONFIG_CORS="${TELEMETRY_CONFIG_CORS:-$default_cors}"
export APP_LOG_LEVEL="${APP_LOG_LEVEL:-info}"
export API_LOG_LEVEL="${API_LOG_LEVEL:-warn}"
# loopback calls must never go through a proxy (libcurl and curl honour these)
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

say() { printf 'run-local: %s\n' "$*" >&2; }

for bin in "$BUILD/tlm-ingest" "$BUILD/tlm-logshipper"; do
    if [ ! -x "$bin" ]; then
        say "$bin is missing: run 'make' first (or 'make run', which builds)"
        exit 1
    fi
done
mkdir -p "$TLM_RUN_DIR" "$(dirname "$TELEMETRY_SOCKET")"

pids=()
names=()
stopping=0
stop_all() {
    [ "$stopping" -eq 1 ] || [ ${#pids[@]} -eq 0 ] && return
    stopping=1
    trap '' INT TERM
    say "stopping"
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do   # ingest first: it drains into the logshipper
        pid="${pids[$i]}"
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 100); do                   # up to 10 s each, then SIGKILL
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "${names[$i]} (pid $pid) did not stop in 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

start() {   # start NAME COMMAND...: in the background, sharing this terminal
    local name="$1"
    shift
    "$@" </dev/null &
    pids+=("$!")
    names+=("$name")
}

busy() {   # busy NAME HOST PORT: fails when something already listens there
    if (exec 3<>"/dev/tcp/$2/$3") 2>/dev/null; then
        say "$1: $2:$3 is already in use (another 'make run'?); set ${4:-its port variable} to another port"
        return 0
    fi
    return 1
}
busy "GAuth double" "$GAUTH_HOST" "$GAUTH_PORT" GAUTH_PORT && exit 1
busy logshipper "$TELEMETRY_LISTEN" "$TELEMETRY_METRICS_PORT" TELEMETRY_METRICS_PORT && exit 1
busy ingest "$TELEMETRY_LISTEN" "$TELEMETRY_PORT" TELEMETRY_PORT && exit 1

wait_http() {   # wait_http NAME URL PID
    local name="$1" url="$2" pid="$3" i
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$name exited at start (see its messages above)"
            return 1
        fi
        if curl -fsS --noproxy '*' -o /dev/null --max-time 1 "$url" 2>/dev/null && kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    say "$name did not answer $url within $WAIT_SECONDS s"
    return 1
}

say "GAuth double on $GAUTH_HOST:$GAUTH_PORT (users: $GAUTH_USERS)"
start gauth "$PYTHON" e2e/gauth/gauth_double.py --host "$GAUTH_HOST" --port "$GAUTH_PORT" --users "$GAUTH_USERS" --quiet 1>&2
wait_http "GAuth double" "http://$GAUTH_HOST:$GAUTH_PORT/auth/v3/ping" "${pids[0]}" >/dev/null || exit 1

say "logshipper: metrics on $TELEMETRY_LISTEN:$TELEMETRY_METRICS_PORT, socket $TELEMETRY_SOCKET"
start logshipper "$BUILD/tlm-logshipper"
wait_http logshipper "http://$TELEMETRY_LISTEN:$TELEMETRY_METRICS_PORT/health/live" "${pids[1]}" || exit 1

say "ingest: API on $TELEMETRY_LISTEN:$TELEMETRY_PORT, GAuth $TELEMETRY_SERVICES_AUTH"
start ingest "$BUILD/tlm-ingest"
wait_http ingest "http://$TELEMETRY_LISTEN:$TELEMETRY_PORT/health/live" "${pids[2]}" || exit 1

api="http://$TELEMETRY_LISTEN:$TELEMETRY_PORT"
cat >&2 <<EOF

tlm is up. Send a batch (ingest answers 202 once the records are written):

curl -sS -i -X POST $api/api/v1/telemetry \\
  -H 'Authorization: Bearer $DEV_TOKEN' -H 'Content-Type: application/json' \\
  -d '{"appName":"wwe_ui","batchId":"try-1","properties":{"agentSessionId":"s-1","connId":"c-1"},
       "traces":[{"ts":"2026-11-24T10:00:00.123Z","level":"info","msg":"hello from curl"}],
       "events":[{"name":"error_http_sync_req_Complete"}],
       "metrics":[{"name":"http_sync_req_AttachUserData","value":42}]}'

Where to look:
  records        this terminal: the logshipper's stdout, one JSON line per record
  diagnostics    this terminal too: both daemons' stderr (JSON lines, logger app|api)
  metrics        curl -s http://$TELEMETRY_LISTEN:$TELEMETRY_METRICS_PORT/metrics
  health         curl -s $api/health/ready ; curl -s http://$TELEMETRY_LISTEN:$TELEMETRY_METRICS_PORT/health/ready
  GAuth double   tokens in $GAUTH_USERS (dev-token, dev-token-2 ...);
                 outage: curl -s -X POST http://$GAUTH_HOST:$GAUTH_PORT/__control -d '{"mode":"down"}'
Ctrl-C stops all three.

EOF

# Stay in the foreground until Ctrl-C or until one of the three ends.
wait -n "${pids[@]}"
rc=$?
for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        say "${names[$i]} ended (exit $rc): stopping the others"
        break
    fi
done
stop_all
exit "$rc"
