#!/usr/bin/env bash
# summary.sh — the closing line CI reads: totals over every suite that ran (plain, sanitized, fuzz).
p=0; f=0
for r in build/test-results build-asan/test-results build-fuzz/test-results; do
  [ -f "$r" ] || continue
  p=$((p + $(grep -c ' pass$' "$r"))); f=$((f + $(grep -c ' fail$' "$r")))
done
echo "$p passed, $f failed"
[ "$f" = 0 ]
