#!/usr/bin/env bash
# bundle.sh MODE — prepare .devcarry/ (git-ignored) for one call on the lent GPU machine.
# A call carries at most 64 MiB (working tree included) and the SmolLM2 GGUF is 94 MiB, so a GPU
# session is three back-to-back calls (the machine stays warm ~30 s between calls; /tmp survives):
#   MODE 1: first half of the GGUF + the datasets and stories260K the runs read
#   MODE 2: second half of the GGUF + SmolLM2's tokenizer.json (for the Python oracles)
#   MODE 3: lib.txz: gqsa and the GPU test binaries built here with CUDA (sm_90, stripped), and every shared
#           library they need that the GPU image lacks (it has no -dev packages; libstdc++/libgcc are
#           left to the image's newer ones); over 40 MiB it is split, MODE 3b carries the second half
# tools/device/stage.sh, sourced on the device, gathers the pieces into /tmp/gq.
set -euo pipefail
mode=${1:?mode 1, 2, 3 or 3b}
cd "$(dirname "$0")/../.."
rm -rf .devcarry && mkdir -p .devcarry
f=models/SmolLM2-135M-Instruct.Q4_1.gguf
half=0 # modes 1 and 2 only (mode 3 needs no model: a fresh checkout may not have fetched it)
case "$mode" in 1|2) half=$(( ($(stat -c %s $f) + 1) / 2 )) ;; esac
case "$mode" in
1)
  root=${GQSA_DATA_ROOT:-../shared}
  mkdir -p .devcarry/shared/datasets/c4 .devcarry/shared/models
  # GQ_BUNDLE_DATA: which datasets travel (default: all the runs read; a call carries at most 64 MiB)
  for d in ${GQ_BUNDLE_DATA:-wikitext-2-raw-v1 piqa arc hellaswag winogrande}; do cp -r "$root/datasets/$d" .devcarry/shared/datasets/; done
  cp "$root/datasets/c4/c4-validation-shard0-first1025.jsonl" .devcarry/shared/datasets/c4/
  cp -r "$root/models/stories260K" .devcarry/shared/models/
  head -c $half $f > .devcarry/model.part1 ;;
2)
  tail -c +$((half + 1)) $f > .devcarry/model.part2
  cp models/*.tokenizer.json .devcarry/ 2>/dev/null || true ;;
3)
  mkdir -p .devcarry/bin .devcarry/lib
  tests=${GQ_BUNDLE_TESTS:-test_gpu_forward test_golden_logits test_cuda_gemv test_gpu_backward}
  # the test binaries too: plain `make` builds gqsa only, and a stale test binary travelled on 2026-12-04
  make -j2 build/gqsa $(for t in $tests; do echo build/tests/$t; done) >/dev/null
  # the device copy has no usable .git: hand over the revision the binaries were built from; stage.sh
  # keeps it in /tmp/gq for the later calls and exports it (a 2026-11-22 run recorded a stale one)
  git describe --always --dirty > .devcarry/GIT_REVISION
  cp build/gqsa .devcarry/bin/
  # GQ_BUNDLE_TESTS: which GPU test binaries travel (a call carries at most 64 MiB)
  for t in $tests; do cp build/tests/$t .devcarry/bin/; done
  strip -g .devcarry/bin/*
  for b in .devcarry/bin/*; do ldd "$b" 2>/dev/null; done | awk '/=> \//{print $3}' | sort -u | while read -r so; do
    case "$(basename "$so")" in libc.so*|libm.so*|libpthread*|libdl*|librt*|ld-linux*|libcuda.so*|libcublas*|libstdc++*|libgcc_s*) ;;
      *) cp -L "$so" .devcarry/lib/ ;; esac
  done
  # xz: the binaries are mostly GPU code (~12 MB each, gzip or xz alike), the libraries shrink 2.5x more
  # than with gzip (libopenblas 36 MB -> 4.3 MB): what lets gqsa + two GPU tests fit one 64 MiB call
  tar cJf .devcarry/lib.txz -C .devcarry lib bin && rm -rf .devcarry/lib .devcarry/bin
  # with the tracked tree (~15 MiB) a call carries ~49 MiB: a larger lib.txz goes in two halves over two
  # back-to-back calls (mode 3 leaves the first in .devcarry, `bundle.sh 3b` swaps in the second; stage.sh
  # keeps the halves in /tmp/gq/parts and unpacks once both are there)
  if [ "$(stat -c %s .devcarry/lib.txz)" -gt $((40 << 20)) ]; then
    rm -rf .devcarry.parts && mkdir -p .devcarry.parts
    split -b $(( ($(stat -c %s .devcarry/lib.txz) + 1) / 2 )) .devcarry/lib.txz .devcarry.parts/lib.txz.part
    rm .devcarry/lib.txz && cp .devcarry.parts/lib.txz.partaa .devcarry/ && cp .devcarry/GIT_REVISION .devcarry.parts/
    echo "bundle.sh: lib.txz split in two: carry this, then run 'tools/device/bundle.sh 3b' for the next call" >&2
  fi ;;
3b)
  [ -f .devcarry.parts/lib.txz.partab ] || { echo "bundle.sh 3b: no second half (run mode 3 first)" >&2; exit 2; }
  rm -rf .devcarry && mkdir -p .devcarry && cp .devcarry.parts/lib.txz.partab .devcarry/
  [ -f .devcarry.parts/GIT_REVISION ] && cp .devcarry.parts/GIT_REVISION .devcarry/ ;;
*) echo "bundle.sh: unknown mode $mode" >&2; exit 2 ;;
esac
du -sh .devcarry
