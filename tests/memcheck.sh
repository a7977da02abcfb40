#!/bin/bash
# memcheck.sh - memory safety of both daemons, as one suite of tests/run-all.sh.
#
#  (a) the unit binaries of the ASan+UBSan build (build/asan/tests/test_*), each one case:
#      exit 0, "0 failed", no sanitizer report;
#  (b) end-to-end suites against the ASan+UBSan daemons (TLM_BUILD_DIR=build/asan) with
#      leak detection: every sanitizer report lands in a file under a fresh log dir, and
#      each report file is one failed case (its head is printed); the pytest verdicts
#      themselves belong to the e2e suite and are only shown here;
#  (c) an end-to-end smoke (a handful of tests) with both daemons under valgrind memcheck
#      (wrapper scripts given to the harness as TLM_BUILD_DIR, so no harness change):
#      each daemon process is one case, passed when its valgrind log ends with
#      "ERROR SUMMARY: 0 errors" (leaks of kind definite and indirect count as errors).
#
# The last line is "memcheck: N passed, N failed"; the exit status is non-zero when
# anything failed.
#
# Environment: MEMCHECK_PARTS="unit asan valgrind"   the parts to run (default: all)
#              MEMCHECK_ASAN_TESTS="<pytest args>"    the (b) subset (default below)
#              MEMCHECK_KEEP=1                        keep the log dir
set -u
cd "$(dirname "$0")/.." || exit 2
REPO="$(pwd)"
PY=/usr/bin/python3
PARTS="${MEMCHECK_PARTS:-unit asan valgrind}"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/tlm-memcheck.XXXXXX")"
[ "${MEMCHECK_KEEP:-0}" = 1 ] || trap 'rm -rf "$LOGS"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok    %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL  %s\n' "$*"; }
want() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# (b): the end-to-end suites that drive the daemons' code paths (not the browser one:
# chromium under ASan adds minutes, not coverage; not the real-Prometheus test), about
# 3.5 minutes. Listed, so that a new suite joins this budget only when added here.
ASAN_SUITES=(test_delivery test_http_batches test_auth test_cors test_config test_ws_stream test_metrics
             test_faults test_hostile)
ASAN_DEFAULT=""
for f in "${ASAN_SUITES[@]}"; do
    [ -e "e2e/$f.py" ] && ASAN_DEFAULT="$ASAN_DEFAULT e2e/$f.py"
done
ASAN_DEFAULT="$ASAN_DEFAULT --deselect e2e/test_metrics.py::test_prometheus_scrapes_and_evaluates_the_alert_rules"
ASAN_TESTS="${MEMCHECK_ASAN_TESTS:-$ASAN_DEFAULT}"
# (c): a smoke of the main paths: HTTP batch, gzip, auth refusal, WebSocket ack, metrics,
# a logshipper SIGTERM, JSON/gzip bombs, an ingest restart under load.
VG_TESTS=(
    "e2e/test_delivery.py::test_health_all_up"
    "e2e/test_delivery.py::test_metrics_count_written_records"
    "e2e/test_http_batches.py::test_batch_lines_carry_every_field"
    "e2e/test_http_batches.py::test_gzip_body_accepted"
    "e2e/test_auth.py::test_invalid_token_401"
    "e2e/test_ws_stream.py::test_auth_by_first_message_answer_shape_and_ack"
    "e2e/test_delivery.py::test_logshipper_sigterm_exits_zero"
    "e2e/test_hostile.py::test_json_depth_bomb"
    "e2e/test_hostile.py::test_gzip_nested_and_concatenated"
    "e2e/test_hostile.py::test_long_strings_cut_to_the_line_limit"
    "e2e/test_faults.py::test_ingest_sigterm_under_load_drains"
)

# Counts and prints the sanitizer reports among files matching $1*; returns their number.
reports() {
    local n=0 f
    for f in "$1"*; do
        [ -s "$f" ] || continue
        n=$((n + 1))
        bad "sanitizer report $(basename "$f"):"
        sed -n '1,25p' "$f" | sed 's/^/      /'
    done
    return $n
}

san_env() {   # $1 = log prefix: every report (ASan, LSan, UBSan) goes to $1.san.<pid>
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:disable_coredump=1:log_path=$1.san:detect_stack_use_after_return=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$1.san"
    export LSAN_OPTIONS="log_path=$1.san"
}

if want unit || want asan; then
    echo "== building the ASan+UBSan daemons and unit tests (make asan)"
    if ! make --no-print-directory asan >"$LOGS/make-asan.log" 2>&1; then
        tail -20 "$LOGS/make-asan.log"
        bad "make asan"
        printf 'memcheck: %d passed, %d failed\n' "$pass" "$fail"
        exit 1
    fi
    # the sanitizer runtime writes its report where log_path says: prove it does, once
    (
        san_env "$LOGS/selftest"
        export ASAN_OPTIONS="$ASAN_OPTIONS:handle_abort=1"
        port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        TELEMETRY_SOCKET="$LOGS/selftest.sock" TELEMETRY_LISTEN=127.0.0.1 TELEMETRY_METRICS_PORT="$port" \
            build/asan/tlm-logshipper >/dev/null 2>&1 &
        pid=$!
        sleep 1
        kill -ABRT "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    )
    if ls "$LOGS"/selftest.san.* >/dev/null 2>&1; then
        ok "sanitizer self-test: a report of build/asan/tlm-logshipper lands in log_path"
        rm -f "$LOGS"/selftest.*
    else
        bad "sanitizer self-test: no report file from an aborted build/asan/tlm-logshipper (log_path ignored?)"
    fi
fi

if want unit; then
    echo "== (a) unit tests, ASan+UBSan"
    for bin in build/asan/tests/test_*; do
        if [ ! -x "$bin" ] || [ ! -f "$bin" ]; then continue; fi
        case "$bin" in *.o | *.d) continue ;; esac
        name="$(basename "$bin")"
        (san_env "$LOGS/unit-$name"; "$bin" >"$LOGS/out-unit-$name" 2>&1)
        rc=$?
        last="$(grep -E '[0-9]+ passed, [0-9]+ failed' "$LOGS/out-unit-$name" | tail -1)"
        reports "$LOGS/unit-$name.san."
        nrep=$?
        if [ "$rc" -eq 0 ] && [ "$nrep" -eq 0 ] && printf '%s' "$last" | grep -q ' 0 failed'; then
            ok "unit $name: $last"
        else
            bad "unit $name: exit $rc, ${last:-no count line}"
            tail -5 "$LOGS/out-unit-$name" | sed 's/^/      /'
        fi
    done
fi

if want asan; then
    echo "== (b) end-to-end against build/asan: $ASAN_TESTS"
    start=$(date +%s)
    (
        san_env "$LOGS/e2e"
        export TLM_BUILD_DIR="$REPO/build/asan"
        # shellcheck disable=SC2086  # the test selection is a list of words
        timeout --kill-after=10 600 "$PY" -m pytest -q $ASAN_TESTS -p no:cacheprovider -rfE
    ) >"$LOGS/e2e-asan.out" 2>&1
    rc=$?
    summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$LOGS/e2e-asan.out" | tail -1)"
    echo "   pytest (exit $rc, $(( $(date +%s) - start ))s): ${summary:-no summary}"
    grep -E '^(FAILED|ERROR) ' "$LOGS/e2e-asan.out" | sed 's/^/   e2e verdict (counted by the e2e suites, not here): /'
    reports "$LOGS/e2e.san."
    nrep=$?
    ran="$(printf '%s' "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')"
    if [ "$nrep" -eq 0 ] && [ "${ran:-0}" -gt 0 ] && [ "$rc" -le 1 ]; then
        ok "e2e under ASan+UBSan: ${ran} tests passed with no sanitizer report (leak detection on)"
    elif [ "$nrep" -eq 0 ]; then
        bad "e2e under ASan+UBSan did not run (pytest exit $rc)"
        tail -15 "$LOGS/e2e-asan.out" | sed 's/^/      /'
    fi
fi

if want valgrind; then
    echo "== (c) end-to-end smoke with both daemons under valgrind memcheck"
    if ! command -v valgrind >/dev/null 2>&1; then
        bad "valgrind is not installed (scripts/deps.sh test installs it)"
    elif [ ! -x build/tlm-ingest ] || [ ! -x build/tlm-logshipper ]; then
        bad "build/tlm-ingest or build/tlm-logshipper missing (make all)"
    else
        vgbin="$LOGS/vgbin"
        mkdir -p "$vgbin" "$LOGS/vg"
        for d in ingest logshipper; do
            cat >"$vgbin/tlm-$d" <<EOF
#!/bin/sh
exec valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \\
    --show-leak-kinds=definite,indirect --track-fds=no --num-callers=30 \\
    --log-file="$LOGS/vg/$d.%p.log" "$REPO/build/tlm-$d" "\$@"
EOF
            chmod +x "$vgbin/tlm-$d"
        done
        tests=()
        for t in "${VG_TESTS[@]}"; do
            file="${t%%::*}"
            fn="${t##*::}"
            if grep -q "def $fn(" "$file" 2>/dev/null; then
                tests+=("$t")
            else
                echo "   (skipping $t: not found)"
            fi
        done
        start=$(date +%s)
        TLM_BUILD_DIR="$vgbin" TLM_E2E_TEST_TIMEOUT=120 timeout --kill-after=10 600 \
            "$PY" -m pytest -q "${tests[@]}" -p no:cacheprovider -rfE >"$LOGS/e2e-vg.out" 2>&1
        rc=$?
        summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$LOGS/e2e-vg.out" | tail -1)"
        echo "   pytest (exit $rc, $(( $(date +%s) - start ))s): ${summary:-no summary}"
        grep -E '^(FAILED|ERROR) ' "$LOGS/e2e-vg.out" | sed 's/^/   e2e verdict under valgrind (not counted here): /'
        n=0
        for f in "$LOGS"/vg/*.log; do
            [ -e "$f" ] || continue
            n=$((n + 1))
            name="$(basename "$f" .log)"
            if ! grep -q 'ERROR SUMMARY:' "$f"; then
                bad "valgrind $name: no ERROR SUMMARY (the process was killed before valgrind finished)"
                tail -5 "$f" | sed 's/^/      /'
            elif grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
                leak="$(grep -E 'definitely lost|All heap blocks were freed' "$f" | head -1 | sed 's/^==[0-9]*== *//')"
                ok "valgrind $name: 0 errors${leak:+; $leak}"
            else
                bad "valgrind $name: $(grep 'ERROR SUMMARY' "$f" | sed 's/^==[0-9]*== *//')"
                grep -vE '^==[0-9]+== *$' "$f" | sed -n '1,60p' | sed 's/^/      /'
            fi
        done
        [ "$n" -gt 0 ] || { bad "valgrind: no daemon ran under valgrind (pytest exit $rc)"; tail -15 "$LOGS/e2e-vg.out"; }
    fi
fi

printf 'memcheck: %d passed, %d failed\n' "$pass" "$fail"
[ "$fail" -eq 0 ]
