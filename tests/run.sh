#!/usr/bin/env bash
# run.sh BUILD — run every test binary in BUILD/tests; append "name status" lines to BUILD/test-results.
# Each binary is a cmocka suite (or a plain program) that exits non-zero on failure.
set -u
build=$1
out="$build/test-results"
: > "$out"
pass=0; fail=0
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t")
  log="$build/tests/$n.log"
  if "$t" > "$log" 2>&1; then
    pass=$((pass+1)); echo "PASS $n"; echo "$build/$n pass" >> "$out"
  else
    fail=$((fail+1)); echo "FAIL $n (log: $log)"; tail -30 "$log" | sed 's/^/    /'; echo "$build/$n fail" >> "$out"
  fi
done
echo "$build: $pass passed, $fail failed"
[ "$fail" = 0 ]
