#!/bin/sh
# alerts.sh - checks the alert rules: promtool syntax check and unit tests, every alert
# tested, and the generated PrometheusRule in sync with deploy/alerts/tlm-rules.yaml.
set -u
cd "$(dirname "$0")/.." || exit 1
rules=deploy/alerts/tlm-rules.yaml
tests=deploy/alerts/tlm-rules.test.yaml
crd=deploy/base/prometheusrule.yaml
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { # name command...: runs the command, shows its output only when it fails
    name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/     /' "$tmp/out"
    fi
}

every_alert_tested() {
    rc=0
    for a in $(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules"); do
        grep -q "alertname: *$a *\$" "$tests" || { echo "alert $a has no test in $tests"; rc=1; }
    done
    return $rc
}

# Parses the PrometheusRule, compares its spec.groups with the plain file and lets promtool
# check them as a rules file of their own.
crd_matches_rules() {
    python3 - "$rules" "$crd" "$tmp/crd-rules.yaml" <<'EOF' || return 1
import json, sys, yaml
plain = yaml.safe_load(open(sys.argv[1]))
crd = yaml.safe_load(open(sys.argv[2]))
assert crd["apiVersion"] == "monitoring.coreos.com/v1", crd["apiVersion"]
assert crd["kind"] == "PrometheusRule", crd["kind"]
assert crd["spec"]["groups"] == plain["groups"], "spec.groups differ from the plain rules file"
with open(sys.argv[3], "w") as f:
    json.dump({"groups": crd["spec"]["groups"]}, f)  # JSON is YAML
EOF
    promtool check rules "$tmp/crd-rules.yaml"
}

if ! command -v promtool >/dev/null 2>&1; then
    echo "FAIL promtool not found (Debian package prometheus: scripts/deps.sh test)"
    echo "alerts: 0 passed, 1 failed"
    exit 1
fi

step "promtool check rules $rules" promtool check rules "$rules"
step "promtool test rules $tests" promtool test rules "$tests"
step "every alert has a unit test" every_alert_tested
step "$crd generated from $rules" python3 deploy/alerts/gen-prometheusrule.py --check
if python3 -c 'import yaml' 2>/dev/null; then
    step "$crd spec.groups equal $rules" crd_matches_rules
else
    echo "skip $crd structural comparison (python3-yaml not installed; the text check above still ran)"
fi

echo "alerts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
