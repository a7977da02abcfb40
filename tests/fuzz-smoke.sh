#!/bin/bash
# fuzz-smoke.sh - every libFuzzer target: replays its committed corpus, then fuzzes it for
# FUZZ_SMOKE_SECONDS (default 10) from a scratch copy. `make fuzz` runs them longer.
# Last line: "fuzz: N passed, N failed" (one check per replay and per run).
set -u
cd "$(dirname "$0")/.." || exit 2
secs="${FUZZ_SMOKE_SECONDS:-10}"
make -s fuzz-build >/dev/null || { echo "fuzz: 0 passed, 1 failed"; exit 1; }
pass=0
fail=0
for src in */fuzz_*.c; do
    name=$(basename "$src" .c)
    corpus="$(dirname "$src")/fuzz_corpus_${name#fuzz_}"
    bin="build/fuzz/$name"
    n=$(ls "$corpus" | wc -l)
    if "$bin" -runs=0 "$corpus" >"build/fuzz/$name.replay.log" 2>&1; then
        echo "ok   $name: replayed $n corpus inputs"
        pass=$((pass + 1))
    else
        echo "FAIL $name: corpus replay (build/fuzz/$name.replay.log)"
        tail -20 "build/fuzz/$name.replay.log"
        fail=$((fail + 1))
    fi
    scratch="build/fuzz/smoke-$name"
    rm -rf "$scratch" && mkdir -p "$scratch"
    if (cd "$scratch" && "../$name" -max_total_time="$secs" -max_len=70000 . "../../../$corpus" >run.log 2>&1); then
        runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$scratch/run.log")
        echo "ok   $name: ${secs} s of fuzzing, ${runs:-?} executions, no crash"
        pass=$((pass + 1))
    else
        echo "FAIL $name: crash while fuzzing (input saved in $scratch)"
        grep -m1 -A15 "ERROR" "$scratch/run.log"
        fail=$((fail + 1))
    fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
