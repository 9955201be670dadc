#!/usr/bin/env bash
# bundle.sh MODE — prepare .devcarry/ (git-ignored) for a call on the lent GPU machine.
# A call carries at most 64 MiB, and the SmolLM2 GGUF is 94 MiB, so a GPU session is two calls:
#   MODE 1: .devcarry/model.part1 (first half of the GGUF) + .devcarry/shared (datasets, stories260K)
#   MODE 2: .devcarry/model.part2 + .devcarry/bin (gqsa and test binaries built here with CUDA, sm_90)
#           + .devcarry/lib (every shared library they need that the GPU image lacks: it has no -dev libs)
#   MODE bin: bin + lib + shared, no model (for runs that need only stories260K or random weights)
# tools/device/stage.sh on the device moves the pieces to /tmp/gq (which survives while the machine is warm).
set -euo pipefail
mode=${1:-bin}
cd "$(dirname "$0")/../.."
rm -rf .devcarry && mkdir -p .devcarry
f=models/SmolLM2-135M-Instruct.Q4_1.gguf
half=$(( ($(stat -c %s $f) + 1) / 2 ))
if [ "$mode" = 1 ] || [ "$mode" = bin ]; then
  root=${GQSA_DATA_ROOT:-../shared}
  mkdir -p .devcarry/shared/datasets/c4 .devcarry/shared/models
  for d in wikitext-2-raw-v1 piqa arc hellaswag winogrande; do cp -r "$root/datasets/$d" .devcarry/shared/datasets/; done
  cp "$root/datasets/c4/c4-validation-shard0-first1025.jsonl" .devcarry/shared/datasets/c4/
  cp -r "$root/models/stories260K" .devcarry/shared/models/
fi
if [ "$mode" = 1 ]; then head -c $half $f > .devcarry/model.part1; du -sh .devcarry; exit 0; fi
if [ "$mode" = 2 ]; then tail -c +$((half + 1)) $f > .devcarry/model.part2; cp models/*.tokenizer.json .devcarry/ 2>/dev/null || true; fi
mkdir -p .devcarry/bin .devcarry/lib
make -j2 >/dev/null
cp build/gqsa .devcarry/bin/
for t in build/tests/test_*; do case "$t" in *.log) ;; *) cp "$t" .devcarry/bin/ ;; esac; done
# libraries: everything ldd resolves outside glibc and the CUDA driver/toolkit (present there)
for b in .devcarry/bin/*; do ldd "$b" 2>/dev/null; done | awk '/=> \//{print $3}' | sort -u | while read -r so; do
  case "$(basename "$so")" in libc.so*|libm.so*|libpthread*|libdl*|librt*|ld-linux*|libcuda.so*|libcublas*) ;;
    *) cp -L "$so" .devcarry/lib/ ;; esac
done
du -sh .devcarry
