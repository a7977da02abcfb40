#!/bin/bash
# up.sh - a kind cluster running tlm's kind overlay, ready for run.sh:
#   1. the cluster (cluster.yaml; kept if it exists),
#   2. the images built (deploy/images/build.sh) and loaded into the node,
#   3. the Prometheus Operator CRDs (ServiceMonitor, PrometheusRule) and ingress-nginx,
#      both pinned (common.sh),
#   4. `kubectl apply -k deploy/overlays/kind`, then waits for the rollouts and the
#      ingress answering /health/ready.
# Environment: TLM_KIND_CLUSTER (tlm), TLM_IMAGE_TOOL (docker | podman), TLM_KIND_SKIP_BUILD=1.
set -euo pipefail
# shellcheck source=e2e/kind/common.sh
. "$(dirname "$0")/common.sh"
cd "$REPO"
need kind kubectl curl "$IMAGE_TOOL"

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    say "cluster $CLUSTER exists: reusing it"
else
    say "creating cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config "$KIND_DIR/cluster.yaml" --wait 180s
fi

if [ "${TLM_KIND_SKIP_BUILD:-0}" != 1 ]; then
    TLM_IMAGE_TOOL="$IMAGE_TOOL" TLM_IMAGE_PREFIX="$IMAGE_PREFIX" TLM_IMAGE_TAG="$IMAGE_TAG" \
        deploy/images/build.sh ingest logshipper gauth-double
fi
say "loading ${IMAGES[*]}"
if [ "$IMAGE_TOOL" = docker ]; then
    kind load docker-image --name "$CLUSTER" "${IMAGES[@]}"
else
    archive="$(mktemp "${TMPDIR:-/tmp}/tlm-images.XXXXXX.tar")"
    trap 'rm -f "$archive"' EXIT
    "$IMAGE_TOOL" save -o "$archive" "${IMAGES[@]}"
    kind load image-archive --name "$CLUSTER" "$archive"
fi

say "Prometheus Operator CRDs (ServiceMonitor, PrometheusRule)"
k apply --server-side --force-conflicts \
    -f "$PROMETHEUS_OPERATOR_CRDS/monitoring.coreos.com_servicemonitors.yaml" \
    -f "$PROMETHEUS_OPERATOR_CRDS/monitoring.coreos.com_prometheusrules.yaml"
k wait --for=condition=Established --timeout=60s \
    crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com

say "ingress-nginx"
k apply -f "$INGRESS_NGINX_MANIFEST"
# the admission jobs may already be gone (ttlSecondsAfterFinished): the apply retries below cover it
k -n ingress-nginx wait --for=condition=complete --timeout=180s job --all || true
k -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=240s

say "applying deploy/overlays/kind"
# the admission webhook may still refuse Ingresses for a few seconds after the rollout
for attempt in 1 2 3 4 5 6; do
    if k apply -k deploy/overlays/kind; then
        break
    fi
    [ "$attempt" -lt 6 ] || die "kubectl apply -k deploy/overlays/kind kept failing"
    say "apply failed (attempt $attempt), retrying in 10 s"
    sleep 10
done
k -n "$NAMESPACE" rollout status deployment/gauth-double --timeout=180s
k -n "$NAMESPACE" rollout status deployment/tlm --timeout=300s

say "waiting for http://127.0.0.1:$HTTP_PORT/health/ready through the ingress"
for _ in $(seq 1 90); do
    if curl -fsS --noproxy '*' -o /dev/null --max-time 2 "http://127.0.0.1:$HTTP_PORT/health/ready"; then
        say "up: API http://127.0.0.1:$HTTP_PORT (through ingress-nginx); now e2e/kind/run.sh"
        exit 0
    fi
    sleep 2
done
k -n "$NAMESPACE" get pods -o wide >&2
die "the ingress did not answer /health/ready within 180 s"
