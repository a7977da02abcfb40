#!/bin/bash
# run-all.sh - every test suite, in order, with one total: what `make test` runs after
# building build/tlm-ingest, build/tlm-logshipper and the unit tests build/tests/test_*.
#
# A suite is a command whose output ends with a count line "N passed, N failed" (pytest's
# "N failed, N passed, N skipped, N error in 1.2s" is read too; errors count as failed).
# A suite that exits non-zero without reporting a failure counts one failed (crash).
# Every suite runs even when an earlier one failed. The last line is always
#   TOTAL: N passed, N failed
# and the exit status is non-zero when anything failed.
#
# Environment: TLM_TEST_ONLY=<regex>   run only the suites whose name matches (grep -E)
#              TLM_SUITE_TIMEOUT=<s>   time limit of one suite (default 900)
#              TLM_PYTEST_ARGS=<args>  more pytest arguments for e2e, e.g. "-k delivery"
#              (the e2e harness reads TLM_E2E_TARGET, TLM_BUILD_DIR...: see e2e/tlm_harness.py)
#              BUILD=<dir>             where the unit binaries are (default build)

# Suites after the unit binaries, in order: "name|command". Add new suites here.
SUITES=(
    "alerts|tests/alerts.sh"
    "docs|tests/docs-sync.sh"
    "fuzz|tests/fuzz-smoke.sh"
    "e2e|eval \"/usr/bin/python3 -m pytest -q e2e/ -p no:cacheprovider -rfEs --ignore=e2e/test_faults.py --ignore=e2e/test_hostile.py \${TLM_PYTEST_ARGS:-}\""
    "faults|/usr/bin/python3 -m pytest -q e2e/test_faults.py -p no:cacheprovider -rfEs"
    "hostile|/usr/bin/python3 -m pytest -q e2e/test_hostile.py -p no:cacheprovider -rfEs"
    "shipper-link|/usr/bin/python3 e2e/tools/fake_ingest.py selftest"
    "shipper-blocked-stdout|/usr/bin/python3 e2e/tools/fake_ingest.py blocktest"
    "memcheck|tests/memcheck.sh"
    "deploy-validate|deploy/validate.sh"
    "podman-smoke|deploy/podman/smoke.sh"
)

set -u
cd "$(dirname "$0")/.." || exit 2
BUILD="${BUILD:-build}"
ONLY="${TLM_TEST_ONLY:-}"
SUITE_TIMEOUT="${TLM_SUITE_TIMEOUT:-900}"

total_pass=0
total_fail=0
summary=()
tmp="$(mktemp -d "${TMPDIR:-/tmp}/tlm-run-all.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Reads a suite's output; prints "passed failed" from its last count line, or nothing.
parse_counts() {
    /usr/bin/python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
text = re.sub(r"\x1b\[[0-9;]*m", "", text)
for line in reversed(text.splitlines()):
    pairs = re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)\b", line)
    if pairs:
        n = {"passed": 0, "failed": 0}
        for count, word in pairs:
            if word == "passed":
                n["passed"] += int(count)
            elif word in ("failed", "error", "errors"):
                n["failed"] += int(count)
        print(n["passed"], n["failed"])
        break
else:
    if re.search(r"^no tests ran", text, re.M):
        print(0, 0)
EOF
}

run_suite() {
    local name="$1" cmd="$2"
    if [ -n "$ONLY" ] && ! printf '%s\n' "$name" | grep -Eq -- "$ONLY"; then
        return
    fi
    local out="$tmp/$name.out" rc start secs counts p f note=""
    printf '\n=== %s: %s\n' "$name" "$cmd"
    start=$(date +%s)
    timeout --kill-after=10 "$SUITE_TIMEOUT" bash -c "$cmd" 2>&1 </dev/null | tee "$out"
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - start ))
    counts="$(parse_counts "$out")"
    if [ -n "$counts" ]; then
        read -r p f <<<"$counts"
    else
        p=0 f=0
    fi
    # pytest exit 5 = no tests collected: not a failure on its own
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && ! { [ "$rc" -eq 5 ] && [ -n "$counts" ]; }; then
        f=$((f + 1))
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            note=" (timed out after ${SUITE_TIMEOUT}s)"
        elif [ -z "$counts" ]; then
            note=" (exit $rc, no count line)"
        else
            note=" (exit $rc)"
        fi
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    summary+=("$(printf '%-28s %5d passed, %3d failed  %4ss%s' "$name" "$p" "$f" "$secs" "$note")")
}

shopt -s nullglob
unit_bins=("$BUILD"/tests/test_*)
shopt -u nullglob
for bin in "${unit_bins[@]}"; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    case "$bin" in *.o|*.d) continue ;; esac
    run_suite "$(basename "$bin")" "$bin"
done
if [ ${#unit_bins[@]} -eq 0 ] && { [ -z "$ONLY" ] || printf 'unit\n' | grep -Eq -- "$ONLY"; }; then
    printf '\n=== unit: no %s/tests/test_* binaries (make unit builds them)\n' "$BUILD"
fi

for entry in "${SUITES[@]}"; do
    name="${entry%%|*}"
    cmd="${entry#*|}"
    script="${cmd%% *}"
    # a suite that is a script of this repo runs only once the script exists
    case "$script" in
        tests/* | scripts/* | e2e/* | deploy/* | bench/*) [ -e "$script" ] || continue ;;
    esac
    run_suite "$name" "$cmd"
done

printf '\n=== summary\n'
for line in "${summary[@]}"; do
    printf '%s\n' "$line"
done
[ ${#summary[@]} -gt 0 ] || printf '(no suite ran%s)\n' "${ONLY:+ matching TLM_TEST_ONLY=$ONLY}"
printf 'TOTAL: %d passed, %d failed\n' "$total_pass" "$total_fail"
[ "$total_fail" -eq 0 ] && [ ${#summary[@]} -gt 0 ]
