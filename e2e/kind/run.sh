#!/bin/bash
# run.sh - the end-to-end suite against the kind cluster that up.sh made. The client API
# goes through ingress-nginx (http://127.0.0.1:18080, cluster.yaml); /metrics (:9107, not
# exposed by the Ingress) and the GAuth double are reached by `kubectl port-forward`; the
# logshipper's stdout is read with `kubectl logs`. Tests marked local_only skip themselves.
#   e2e/kind/run.sh [pytest arguments...]      (default: the whole suite)
# Last line: pytest's summary. Exit status: pytest's.
set -euo pipefail
# shellcheck source=e2e/kind/common.sh
. "$(dirname "$0")/common.sh"
cd "$REPO"
need kubectl curl /usr/bin/python3

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pf_pids=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
stop_forwards() {
    local p
    for p in "${pf_pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
trap stop_forwards EXIT

forward() {   # forward SERVICE PORT VAR: port-forwards, sets VAR to the local port once it listens
    local svc="$1" port="$2" local_port log
    local_port="$(free_port)"
    log="$(mktemp "${TMPDIR:-/tmp}/tlm-pf.XXXXXX")"
    k -n "$NAMESPACE" port-forward --address 127.0.0.1 "svc/$svc" "$local_port:$port" >"$log" 2>&1 &
    pf_pids+=("$!")
    for _ in $(seq 1 50); do
        if grep -q "Forwarding from" "$log"; then
            rm -f "$log"
            printf -v "$3" '%s' "$local_port"
            return 0
        fi
        sleep 0.2
    done
    cat "$log" >&2
    die "kubectl port-forward svc/$svc $port did not start"
}

metrics_port="" gauth_port=""
forward tlm 9107 metrics_port
forward gauth-double 8095 gauth_port

export TLM_E2E_TARGET=external
export TLM_INGEST_URL="http://127.0.0.1:$HTTP_PORT"
export TLM_METRICS_URL="http://127.0.0.1:$metrics_port"
export TLM_GAUTH_URL="http://127.0.0.1:$gauth_port"
export TLM_LOGS_CMD="kubectl --context $KCTX -n $NAMESPACE logs -l $POD_SELECTOR -c logshipper --tail=-1 --max-log-requests=20"
export TLM_INGEST_LOGS_CMD="kubectl --context $KCTX -n $NAMESPACE logs -l $POD_SELECTOR -c ingest --tail=-1 --max-log-requests=20"
TLM_E2E_CONFIG="$(kubectl kustomize deploy/overlays/kind | /usr/bin/python3 deploy/podman/render.py --config-json)"
export TLM_E2E_CONFIG
export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"

curl -fsS --noproxy '*' -o /dev/null --max-time 5 "$TLM_INGEST_URL/health/ready" ||
    die "$TLM_INGEST_URL/health/ready does not answer 200: run e2e/kind/up.sh first"

say "e2e suite: API $TLM_INGEST_URL, metrics $TLM_METRICS_URL, GAuth $TLM_GAUTH_URL"
cd e2e
set +e
timeout --kill-after=10 1200 /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfEs "$@"
rc=$?
set -e
exit "$rc"
