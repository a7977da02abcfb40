#!/bin/bash
# down.sh - deletes the kind cluster up.sh made (TLM_KIND_CLUSTER, default tlm).
set -euo pipefail
# shellcheck source=e2e/kind/common.sh
. "$(dirname "$0")/common.sh"
need kind
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
else
    say "no cluster $CLUSTER"
fi
