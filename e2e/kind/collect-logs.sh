#!/bin/bash
# collect-logs.sh DIR - what to look at when the kind suite failed: kind's node logs, every
# object and event, descriptions and logs (current and previous) of the tlm and GAuth pods,
# and the ingress controller's log. Never fails (it runs after a failure).
set -uo pipefail
# shellcheck source=e2e/kind/common.sh
. "$(dirname "$0")/common.sh"
out="${1:-${TMPDIR:-/tmp}/tlm-kind-logs}"
mkdir -p "$out"
kind export logs --name "$CLUSTER" "$out/kind" >/dev/null 2>&1 || say "kind export logs failed"
k get all,ingress,networkpolicy,hpa,pdb,configmap,servicemonitor,prometheusrule -A -o wide >"$out/objects.txt" 2>&1
k get events -A --sort-by=.lastTimestamp >"$out/events.txt" 2>&1
k -n "$NAMESPACE" describe pods >"$out/pods-describe.txt" 2>&1
for c in ingest logshipper; do
    k -n "$NAMESPACE" logs -l "$POD_SELECTOR" -c "$c" --tail=-1 --prefix >"$out/tlm-$c.log" 2>&1
    k -n "$NAMESPACE" logs -l "$POD_SELECTOR" -c "$c" --tail=-1 --prefix --previous >"$out/tlm-$c.previous.log" 2>&1
done
k -n "$NAMESPACE" logs deployment/gauth-double --tail=-1 >"$out/gauth-double.log" 2>&1
k -n ingress-nginx logs deployment/ingress-nginx-controller --tail=2000 >"$out/ingress-nginx.log" 2>&1
say "logs in $out"
exit 0
