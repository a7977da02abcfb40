#!/bin/bash
# smoke.sh - the local proof of the images and the pod spec: builds the three images with
# podman, runs the kind overlay's pod with `podman kube play` (rendered for podman by
# render.py: logshipper + ingest + GAuth double in one pod, loopback host ports), runs the
# e2e tests marked `smoke` against it as an external target (a batch in, its line in
# `podman logs` of the logshipper container, /metrics answering, a WebSocket ack), then
# stops the pod with SIGTERM and checks both daemons exit 0 within the grace period.
# The pod is always taken down and its volume removed.
#
# Last line: "podman-smoke: N passed, N failed". Exit 0 only when nothing failed.
# Environment: TLM_SMOKE_SKIP_BUILD=1   use the images already built
#              TLM_SMOKE_KEEP=1         leave the pod running (prints how to reach it)
#              TLM_SMOKE_PYTEST_ARGS    extra pytest arguments (e.g. "-m 'not local_only'"
#                                       runs every external-capable test instead of `smoke`)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
PY=/usr/bin/python3
passed=0
failed=0

say() { printf 'podman-smoke: %s\n' "$*" >&2; }
result() {   # result ok|fail WHAT
    if [ "$1" = ok ]; then
        passed=$((passed + 1)); say "PASS $2"
    else
        failed=$((failed + 1)); say "FAIL $2"
    fi
}
finish() {
    printf 'podman-smoke: %d passed, %d failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ]
    exit $?
}

# 1. podman, the base image, the images -------------------------------------------------
if ! scripts/podman-setup.sh; then
    result fail "podman setup (scripts/podman-setup.sh)"
    finish
fi
# shellcheck source=/dev/null # written by podman-setup.sh
. build/podman/env
if [ "${TLM_SMOKE_SKIP_BUILD:-0}" != 1 ]; then
    if deploy/images/build.sh ingest logshipper gauth-double >build/podman/images.log 2>&1; then
        result ok "images built (log: build/podman/images.log)"
    else
        tail -30 build/podman/images.log >&2
        result fail "images built (log: build/podman/images.log)"
        finish
    fi
fi

# 2. render the kind overlay for podman ------------------------------------------------------
read -r ingest_port metrics_port gauth_port < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
suffix="$(date +%s)-$$"
pod="tlm-smoke-$suffix"
work="$(mktemp -d "${TMPDIR:-/tmp}/tlm-podman-smoke.XXXXXX")"
rendered="$work/kind.yaml"
podyaml="$work/pod.yaml"

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    if [ "${TLM_SMOKE_KEEP:-0}" = 1 ]; then
        say "kept: pod $pod, API http://127.0.0.1:$ingest_port, metrics http://127.0.0.1:$metrics_port, GAuth http://127.0.0.1:$gauth_port"
        say "take it down with: CONTAINERS_CONF=$CONTAINERS_CONF podman kube down $podyaml"
        return
    fi
    podman kube down "$podyaml" >/dev/null 2>&1
    podman pod rm -f "$pod" >/dev/null 2>&1
    podman volume rm -f "tlm-socket-$suffix" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! kubectl kustomize deploy/overlays/kind >"$rendered" ||
   ! "$PY" deploy/podman/render.py --name "$pod" --suffix "$suffix" --ingest-port "$ingest_port" \
        --metrics-port "$metrics_port" --gauth-port "$gauth_port" <"$rendered" >"$podyaml"; then
    result fail "render the kind overlay for podman"
    finish
fi

# 3. play it ---------------------------------------------------------------------------------
if ! podman kube play "$podyaml" >"$work/play.log" 2>&1; then
    cat "$work/play.log" >&2
    result fail "podman kube play"
    finish
fi
result ok "podman kube play ($pod)"

up() { curl -fsS --noproxy '*' -o /dev/null --max-time 2 "$1"; }
deadline=$(( $(date +%s) + 60 ))
while :; do
    if up "http://127.0.0.1:$ingest_port/health/ready" && up "http://127.0.0.1:$metrics_port/health/ready" &&
       up "http://127.0.0.1:$gauth_port/auth/v3/ping"; then
        result ok "pod ready: ingest and logshipper /health/ready, GAuth double /auth/v3/ping"
        break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        result fail "pod ready within 60 s"
        for c in logshipper ingest gauth; do
            say "--- podman logs $pod-$c (tail)"
            podman logs --tail 20 "$pod-$c" >&2 2>&1
        done
        finish
    fi
    sleep 0.5
done

# 4. the smoke tests of the e2e suite, against the pod -----------------------------------------
export TLM_E2E_TARGET=external
export TLM_INGEST_URL="http://127.0.0.1:$ingest_port"
export TLM_METRICS_URL="http://127.0.0.1:$metrics_port"
export TLM_GAUTH_URL="http://127.0.0.1:$gauth_port"
export TLM_LOGS_CMD="podman logs $pod-logshipper"
export TLM_INGEST_LOGS_CMD="podman logs $pod-ingest"
TLM_E2E_CONFIG="$("$PY" deploy/podman/render.py --config-json <"$rendered")"
export TLM_E2E_CONFIG
export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"
pytest_args=(-m smoke)
if [ -n "${TLM_SMOKE_PYTEST_ARGS:-}" ]; then
    eval "pytest_args=(${TLM_SMOKE_PYTEST_ARGS})"
fi
say "e2e ${pytest_args[*]} against $pod"
(cd e2e && timeout --kill-after=10 300 "$PY" -m pytest -q -p no:cacheprovider -rfEs "${pytest_args[@]}") \
    >"$work/pytest.out" 2>&1
rc=$?
cat "$work/pytest.out"
counts="$("$PY" - "$work/pytest.out" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
for line in reversed(text.splitlines()):
    pairs = re.findall(r"(\d+) (passed|failed|errors?)\b", line)
    if pairs:
        p = sum(int(n) for n, w in pairs if w == "passed")
        f = sum(int(n) for n, w in pairs if w != "passed")
        print(p, f)
        break
else:
    print(0, 0)
EOF
)"
read -r p f <<<"$counts"
passed=$((passed + p))
failed=$((failed + f))
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    result fail "e2e smoke tests ran (pytest exit $rc, no test ran)"
elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    result fail "e2e smoke tests (pytest exit $rc)"
fi
if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for c in logshipper ingest; do
        say "--- podman logs $pod-$c (stderr tail)"
        podman logs --tail 15 "$pod-$c" 2>&1 | grep -v '"rid"' >&2
    done
fi

# 5. SIGTERM: both daemons drain and exit 0 well within the grace period -----------------------
if [ "${TLM_SMOKE_KEEP:-0}" != 1 ]; then
    start=$(date +%s)
    podman pod stop -t 60 "$pod" >/dev/null 2>&1
    took=$(( $(date +%s) - start ))
    codes=""
    for c in ingest logshipper; do
        codes="$codes $c=$(podman inspect --format '{{.State.ExitCode}}' "$pod-$c" 2>/dev/null || echo '?')"
    done
    if [ "$codes" = " ingest=0 logshipper=0" ] && [ "$took" -lt 45 ]; then
        result ok "SIGTERM: exit codes$codes after ${took}s"
    else
        result fail "SIGTERM: exit codes$codes after ${took}s (want 0 and 0, under 45 s)"
    fi
fi
finish
