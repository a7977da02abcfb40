#!/bin/bash
# docs-sync.sh - the README's variable table is the one the config table prints
# (`tlm-ingest --print-config`): a variable added or changed in common/config.c without the
# README following fails here. Last line: "docs: N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD="${BUILD:-build}"
pass=0
fail=0
want="$("$BUILD/tlm-ingest" --print-config)"
if grep -qxF -- "$(printf '%s\n' "$want" | head -1)" README.md &&
   diff <(printf '%s\n' "$want") <(sed -n '/^| Variable | Default | Meaning |$/,/^$/p' README.md | sed '/^$/d') >/dev/null; then
    echo "ok   README variable table matches tlm-ingest --print-config"
    pass=$((pass + 1))
else
    echo "FAIL README variable table differs from tlm-ingest --print-config (paste its output)"
    fail=$((fail + 1))
fi
if [ "$("$BUILD/tlm-logshipper" --print-config)" = "$want" ]; then
    echo "ok   tlm-logshipper --print-config prints the same table (one config, both daemons)"
    pass=$((pass + 1))
else
    echo "FAIL tlm-logshipper --print-config differs from tlm-ingest's"
    fail=$((fail + 1))
fi
for v in $(printf '%s\n' "$want" | sed -n 's/^| `\([A-Z_]*\)`.*/\1/p'); do
    if grep -rqF "\"$v\"" common/config.c; then pass=$((pass + 1)); else echo "FAIL $v not in common/config.c"; fail=$((fail + 1)); fi
done
echo "docs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
