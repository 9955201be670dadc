#!/usr/bin/env bash
# run.sh DIR — a short, bounded libFuzzer run of every fuzz target, seeded from tests/fuzz/corpus/<name>
# (text seeds) and from DIR/make_seeds (valid tiny model files written by the fixture catalogue).
set -u
dir=$1; out="$dir/test-results"; : > "$out"
secs=${GQSA_FUZZ_SECONDS:-20}
pass=0; fail=0
seeds=$(mktemp -d)
"$dir/make_seeds" "$seeds" || { echo "fuzz: make_seeds failed"; echo "fuzz: 0 passed, 1 failed"; exit 1; }
for t in "$dir"/fuzz_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t"); corpus="tests/fuzz/corpus/${n#fuzz_}"
  work=$(mktemp -d); [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
  [ -d "$seeds/${n#fuzz_}" ] && cp "$seeds/${n#fuzz_}"/* "$work"/
  if "$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 "$work" > "$dir/$n.log" 2>&1; then
    pass=$((pass+1)); echo "PASS $n (${secs}s)"; echo "$n pass" >> "$out"
  else
    fail=$((fail+1)); echo "FAIL $n"; tail -40 "$dir/$n.log"; echo "$n fail" >> "$out"
  fi
  rm -rf "$work"
done
rm -rf "$seeds"
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
