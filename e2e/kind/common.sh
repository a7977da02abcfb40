# common.sh - settings shared by up.sh, run.sh, down.sh and collect-logs.sh (sourced).
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this
KIND_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$KIND_DIR/../.." && pwd)"
CLUSTER="${TLM_KIND_CLUSTER:-tlm}"
NAMESPACE="${TLM_KIND_NAMESPACE:-tlm}"
# the host port cluster.yaml publishes the ingress controller on
HTTP_PORT="${TLM_KIND_HTTP_PORT:-18080}"
IMAGE_TOOL="${TLM_IMAGE_TOOL:-docker}"
IMAGE_PREFIX="${TLM_IMAGE_PREFIX:-localhost/}"
IMAGE_TAG="${TLM_IMAGE_TAG:-dev}"
IMAGES=("${IMAGE_PREFIX}tlm-ingest:$IMAGE_TAG" "${IMAGE_PREFIX}tlm-logshipper:$IMAGE_TAG" "${IMAGE_PREFIX}gauth-double:$IMAGE_TAG")
# pinned add-ons
INGRESS_NGINX_MANIFEST="https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.12.3/deploy/static/provider/kind/deploy.yaml"
PROMETHEUS_OPERATOR_CRDS="https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.80.0/example/prometheus-operator-crd"
POD_SELECTOR="app.kubernetes.io/name=tlm,app.kubernetes.io/component=telemetry"
KCTX="kind-$CLUSTER"

say() { printf 'kind-e2e: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || die "$t is needed (see deploy/README.md, kind)"
    done
}
k() { kubectl --context "$KCTX" "$@"; }
