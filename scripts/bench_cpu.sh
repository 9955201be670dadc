#!/usr/bin/env bash
# bench_cpu.sh — CPU perplexity throughput of SmolLM2-135M against this machine's measured sgemm peak
# (`make bench-cpu`). Runs `gqsa eval ppl` on WikiText-2 at seqlen 2048 with --limit 4 windows (not the
# full protocol: a partial run, for speed only) and `gqsa eval ppl --sgemm-peak`, then prints achieved
# model GFLOP/s (2 * weights * tokens + causal attention) as a fraction of the sgemm peak.
# Overridable: MODEL, SEQLEN, LIMIT, GQSA (binary). Must not: write results anywhere but stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
GQSA=${GQSA:-./gqsa}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SEQLEN=${SEQLEN:-2048}
LIMIT=${LIMIT:-4}
if [ ! -f "$MODEL" ]; then echo "bench-cpu: $MODEL not found (run: make models)" >&2; exit 1; fi
echo "== machine: $(nproc) CPUs online, GQSA_THREADS=${GQSA_THREADS:-all}, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== sgemm peak"
peak_out=$("$GQSA" eval ppl --sgemm-peak)
echo "$peak_out"
peak=$(echo "$peak_out" | awk '/^sgemm_peak_gflops/ {print $2}')
echo "== perplexity run: $MODEL, wikitext2, seqlen $SEQLEN, --limit $LIMIT"
json=$("$GQSA" eval ppl --model "$MODEL" --dataset wikitext2 --seqlen "$SEQLEN" --limit "$LIMIT" --json)
echo "$json"
python3 - "$json" "$peak" <<'PY'
import json, sys
d, peak = json.loads(sys.argv[1]), float(sys.argv[2])
print("== result (partial run: %d of %d windows; ppl below is NOT the full-protocol number)"
      % (d["n_windows"], d["windows_available"]))
print("tokens/s            %.1f" % d["tok_per_s"])
print("model GFLOP         %.1f" % d["gflop"])
print("achieved GFLOP/s    %.1f" % d["gflops"])
print("sgemm peak GFLOP/s  %.1f" % peak)
print("fraction of peak    %.1f%%" % (100.0 * d["gflops"] / peak if peak > 0 else 0))
print("ppl (partial)       %.4f" % d["ppl"])
PY
