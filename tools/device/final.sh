#!/usr/bin/env bash
# final.sh PHASE — the batched GPU-machine run (after `. tools/device/stage.sh`). Phases:
#   tests    GPU test binaries (GPU forward vs CPU, golden logits, GEMV kernels vs CPU reference)
#   ppl      SmolLM2 FP perplexity on the GPU (full protocol, both datasets) + the first 16 windows
#   bench    kernel and decode benchmarks (CSV into $OUT)
#   sweeps   start the SmolLM2 sweeps (ablation, methods, zero-shot) in the background (setsid)
#   wait N   wait up to N seconds for the sweeps, then collect
#   collect  copy the store, render every report into $OUT
#   train    GPU training engine test (GPU vs CPU backward) + `gqsa bench train` (CSV into $OUT)
#   table8   SmolLM2 one-shot / +BQPO / +BQPO+E2E-OQP sweep (configs/smollm2_table8.yaml), trained and
#            evaluated on the GPU, then the reports into $OUT
#   gputests the GPU test binaries of this revision (GEMV kernels; GPU forward, decode and calibrate)
#   benchall kernel table (all four shapes, batch 1 and 16; GQ_KERNEL_ONLY: one shape, GQ_KERNEL_TIMEOUT; GQ_SKIP_DECODE=1:
#            no decode), the decode table (GQ_DECODE_LENGTHS), and with
#            GQ_BENCHALL_EXTRA=1 the 2:4 baseline and decode with PDL off / the v4 task kernel; each with a
#            time limit so the call stays under 10 minutes
#   v5       batch-1 kernel table (quick) and decode with the L2 prefetch on and off
#   v6       batch-1 kernel table (quick) and decode with the kernels of GQ_DECODE_VERSIONS (v3 .. v11)
#   v16      the GEMV tests, the batch-1 8192^2 table with the v16 study and bulk_read ceilings (GQ_V16_PROBE=1: and
#            Nsight Compute of v16's engine and of bulk_read)
#   v17      the GEMV tests, the batch-1 kernel table of all four shapes with the v17 study (v17_r1/2/4), and
#            decode with v11 (the defaults) beside v17 (GQS and dense W4)
#   v18      the batch 2-16 kernel table of all four shapes (v18, tensor cores, beside v7/v11 and cuBLAS FP16):
#            run after v17 (whose GEMV tests include test_v18_configs)
#   probe K.. Nsight Compute (--set full) of the named (mangled) kernels at 8192^2, batch GQ_PROBE_BATCH (1)
#   table8q  configs/smollm2_table8_quick.yaml (W4S50, W4S60, W2 at 32 windows, calibrate on the GPU),
#            reports, then SmolLM2 real decoding
set -u
# GQ_OUT: where the phase writes (default $OUT); a call returns at most 8 files, so a command running
# several phases points GQ_OUT at a scratch folder and tars it into $OUT at the end
O=${GQ_OUT:-${OUT:-/tmp/out}}
mkdir -p "$O"
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
export GQSA_PROGRESS=1
[ -f .devcarry/GIT_REVISION ] && export GQSA_GIT_REVISION=$(cat .devcarry/GIT_REVISION)
collect() {
  mkdir -p "$O/report"
  [ -f results/gqsa.sqlite ] && sqlite3 results/gqsa.sqlite ".backup '$O/gqsa.sqlite'" 2>/dev/null || cp results/gqsa.sqlite "$O/" 2>/dev/null
  gqsa report --store results/gqsa.sqlite --out "$O/report" --kind all > "$O/report.log" 2>&1; tail -3 "$O/report.log"
  cp /tmp/gq/sweeps.log "$O/" 2>/dev/null
  ls "$O/report" | head -30
}
case "$1" in
tests)
  for t in test_gpu_forward test_golden_logits test_cuda_gemv; do
    timeout 240 /tmp/gq/wrap/$t > "$O/$t.log" 2>&1; echo "$t rc=$?"; grep -E "PASSED|FAILED|SKIP|worst|error" "$O/$t.log" | tail -4
  done ;;
ppl)
  for d in wikitext2 c4; do
    gqsa eval ppl --model $M --dataset $d --device cuda --json > "$O/ppl_${d}_cuda.json" 2> "$O/ppl_${d}_cuda.err"; echo "$d rc=$?"; cat "$O/ppl_${d}_cuda.json"; echo
  done
  gqsa eval ppl --model $M --dataset wikitext2 --device cuda --limit 16 --json > "$O/ppl_wikitext2_cuda_limit16.json"; cat "$O/ppl_wikitext2_cuda_limit16.json"; echo ;;
bench)
  timeout 240 gqsa bench kernel --quick --csv "$O/kernel.csv" > "$O/kernel.log" 2>&1; echo "kernel rc=$?"; tail -25 "$O/kernel.log"
  timeout 120 python3 tools/bench_24.py --csv "$O/sparse24.csv" > "$O/sparse24.log" 2>&1; echo "2:4 rc=$?"; tail -5 "$O/sparse24.log"
  timeout 200 gqsa bench decode --shape llama2-7b --formats fp16,w4,gqs-s30,gqs-s40,gqs-s50 --lengths 128,256,512,1024 --csv "$O/decode.csv" > "$O/decode.log" 2>&1; echo "decode rc=$?"; tail -14 "$O/decode.log"
  timeout 60 gqsa bench decode --shape smollm2 --model $M --formats fp16,gqs-s50 --lengths 128 --csv "$O/decode_smollm2.csv" > "$O/decode_smollm2.log" 2>&1; echo "decode smollm2 rc=$?"; tail -8 "$O/decode_smollm2.log" ;;
sweeps)
  setsid nohup bash -c "
    gqsa sweep configs/smollm2_ablation.yaml --device cuda --keep-going;
    gqsa sweep configs/smollm2_methods.yaml --device cuda --keep-going;
    gqsa sweep configs/smollm2_zeroshot.yaml --device cuda --keep-going;
    echo ALL_SWEEPS_DONE" > /tmp/gq/sweeps.log 2>&1 < /dev/null &
  sleep 2; echo started; tail -3 /tmp/gq/sweeps.log ;;
wait)
  end=$(( $(date +%s) + ${2:-500} ))
  while [ "$(date +%s)" -lt "$end" ] && ! grep -q ALL_SWEEPS_DONE /tmp/gq/sweeps.log; do sleep 10; done
  grep -E "^point|done|failed|error" /tmp/gq/sweeps.log | tail -40; tail -2 /tmp/gq/sweeps.log
  collect ;;
train)
  timeout 300 /tmp/gq/wrap/test_gpu_backward > "$O/test_gpu_backward.log" 2>&1; echo "test_gpu_backward rc=$?"
  grep -E "FAIL|SKIP|PASSED|FAILED" "$O/test_gpu_backward.log" | tail -20
  timeout 300 gqsa bench train --iters 10 --csv "$O/bench_train.csv" > "$O/bench_train.log" 2>&1; echo "bench train rc=$?"
  cat "$O/bench_train.log" ;;
table8)
  timeout 3000 gqsa sweep configs/smollm2_table8.yaml --device cuda --keep-going > "$O/table8.log" 2>&1; echo "table8 rc=$?"
  grep -E "^point|done|failed|error|ppl" "$O/table8.log" | tail -30
  collect ;;
gputests)
  for t in test_cuda_gemv test_gpu_forward; do
    [ -x /tmp/gq/wrap/$t ] || { echo "$t: not bundled"; continue; }
    s0=$(date +%s); timeout 220 /tmp/gq/wrap/$t > "$O/$t.log" 2>&1; rc=$?
    echo "$t rc=$rc ($(( $(date +%s) - s0 )) s)"; grep -E "PASSED|FAILED|SKIP|configurations|FAIL " "$O/$t.log" | tail -6
  done ;;
benchall)
  s0=$(date +%s)
  timeout ${GQ_KERNEL_TIMEOUT:-320} gqsa bench kernel --batches 1,16 ${GQ_KERNEL_ONLY:+--only $GQ_KERNEL_ONLY} --csv "$O/kernel.csv" > "$O/kernel.log" 2>&1; echo "kernel rc=$? ($(( $(date +%s) - s0 )) s)"
  sed -n '/^targets/,$p' "$O/kernel.log"
  [ -n "${GQ_SKIP_DECODE:-}" ] && exit 0
  s0=$(date +%s)
  # GQ_DECODE_FLAGS: kernel choices for the decode table (e.g. the next default, measured before it is one)
  timeout 150 gqsa bench decode --shape llama2-7b --formats fp16,w4,gqs-s30,gqs-s40,gqs-s50 --lengths ${GQ_DECODE_LENGTHS:-128,512,1024} ${GQ_DECODE_FLAGS:-} --csv "$O/decode.csv" > "$O/decode.log" 2>&1
  echo "decode rc=$? ($(( $(date +%s) - s0 )) s)"; grep -E "tok/s|^fp16|^w4|^gqs" "$O/decode.log" | grep -v "memory:" | tail -22
  # (the 2:4 baseline, PDL off and the v4 task kernel in decode: measured 2026-12-02, PERF.md "v4";
  # GQ_BENCHALL_EXTRA=1 reruns them)
  if [ -n "${GQ_BENCHALL_EXTRA:-}" ]; then
    timeout 50 python3 tools/bench_24.py --csv "$O/sparse24.csv" > "$O/sparse24.log" 2>&1; echo "2:4 rc=$?"; tail -3 "$O/sparse24.log"
    timeout 40 gqsa bench decode --shape llama2-7b --formats fp16,w4,gqs-s50 --lengths 128 --pdl off --csv "$O/decode_nopdl.csv" > "$O/decode_nopdl.log" 2>&1
    echo "decode nopdl rc=$?"; grep -E "^fp16|^w4|^gqs" "$O/decode_nopdl.log" | grep -v "memory:"
    timeout 50 gqsa bench decode --shape llama2-7b --formats gqs-s50,gqs-s30 --lengths 128,1024 --gemv gqs_task_v4 --csv "$O/decode_task.csv" > "$O/decode_task.log" 2>&1
    echo "decode task rc=$?"; grep -E "^gqs" "$O/decode_task.log" | grep -v "memory:"
  fi ;;
table8q)
  s0=$(date +%s)
  timeout 480 gqsa sweep configs/smollm2_table8_quick.yaml --device cuda --keep-going > "$O/table8.log" 2>&1; echo "table8 rc=$? ($(( $(date +%s) - s0 )) s)"
  grep -E "^point|done|failed|error|ppl|calib" "$O/table8.log" | tail -40
  collect
  timeout 40 gqsa bench decode --shape smollm2 --model $M --formats fp16,gqs-s50 --lengths 128 --csv "$O/decode_smollm2.csv" > "$O/decode_smollm2.log" 2>&1; echo "decode smollm2 rc=$?"; tail -6 "$O/decode_smollm2.log" ;;
v5)
  # v5 first look: batch-1 kernel table (quick: every shape, S50 + G sweep at 8192^2), decode with and without
  # the L2 prefetch (the prefetch-off engine is v3 + the new RMSNorm)
  s0=$(date +%s)
  timeout 150 gqsa bench kernel --quick --batches 1 --csv "$O/kernel.csv" > "$O/kernel.log" 2>&1; echo "kernel rc=$? ($(( $(date +%s) - s0 )) s)"
  sed -n '/^targets/,$p' "$O/kernel.log"
  for pf in on off; do
    s0=$(date +%s)
    timeout 80 gqsa bench decode --shape llama2-7b --formats fp16,w4,gqs-s50 --lengths 128,1024 --prefetch $pf --csv "$O/decode_pf$pf.csv" > "$O/decode_pf$pf.log" 2>&1
    echo "decode prefetch $pf rc=$? ($(( $(date +%s) - s0 )) s)"; grep -E "^engine|^fp16|^w4|^gqs" "$O/decode_pf$pf.log" | grep -v "memory:"
  done ;;
v6)
  # batch-1 kernel table (quick; v1..v7 on the same matrices), then decode with the kernels of each version
  # in GQ_DECODE_VERSIONS (default v7 v3; the first v6 call ran v5 v6 v3)
  s0=$(date +%s)
  timeout 150 gqsa bench kernel --quick --batches 1 --csv "$O/kernel.csv" > "$O/kernel.log" 2>&1; echo "kernel rc=$? ($(( $(date +%s) - s0 )) s)"
  sed -n '/^versions/,$p' "$O/kernel.log" | grep -E "^versions|^kernel|8192 +8192|^targets|PASS|MISS|rows in"
  for v in ${GQ_DECODE_VERSIONS:-v7 v3}; do
    case $v in v5) f="--prefetch on";; v6) f="--gemv gqs_row_v6 --w4-gemv w4_dense_v6";; v7) f="--gemv gqs_row_v7 --w4-gemv w4_dense_v7";; v8) f="--gemv gqs_row_v8 --w4-gemv w4_dense_v8";; v9) f="--gemv gqs_row_v9 --w4-gemv w4_dense_v9";; v10) f="--gemv gqs_task_v10 --w4-gemv w4_dense_v9";; v11) f="--gemv gqs_row_v11 --w4-gemv w4_dense_v11";; v12) f="--gemv gqs_row_v12 --w4-gemv w4_dense_v12";; v3) f="--gemv gqs_row_v3 --w4-gemv w4_dense_v3";; esac
    s0=$(date +%s)
    timeout 70 gqsa bench decode --shape llama2-7b --formats fp16,w4,gqs-s50 --lengths 128,1024 $f --csv "$O/decode_$v.csv" > "$O/decode_$v.log" 2>&1
    echo "decode $v rc=$? ($(( $(date +%s) - s0 )) s)"; grep -E "^engine|^fp16|^w4|^gqs" "$O/decode_$v.log" | grep -v "memory:"
  done ;;
v16)
  # the next v16 call (PERF.md "Next GPU session"): the GEMV tests, the batch-1 8192^2 table with the v16 study and
  # the bulk_read ceilings, then Nsight Compute of v16's engine alone and of the one-thread bulk_read
  s0=$(date +%s); timeout 150 /tmp/gq/wrap/test_cuda_gemv > "$O/test_cuda_gemv.log" 2>&1; echo "test_cuda_gemv rc=$? ($(( $(date +%s) - s0 )) s)"
  grep -E "PASSED|FAILED|configurations|FAIL " "$O/test_cuda_gemv.log" | tail -6
  s0=$(date +%s); timeout 200 gqsa bench kernel --quick --only 8192 --batches 1 --csv "$O/kernel.csv" > "$O/kernel.log" 2>&1
  echo "kernel rc=$? ($(( $(date +%s) - s0 )) s)"
  grep -E "^(gqs_row_v1[16]|w4_dense_v1[16]|walk_|bulk_|v16_|read_stream|walk_stream) " "$O/kernel.log" | awk '{print $1, $7, $8}' | head -60
  sed -n '/^targets/,$p' "$O/kernel.log" | head -12
  [ -n "${GQ_V16_PROBE:-}" ] && bash "$0" probe _Z17gq_gemv_ws_kernelILi16ELb0ELb0ELb1EEv12gq_gemv_args regex:bulk_read_kernel
  ;;
v17)
  # the v17 call (PERF.md "v17"): the GEMV tests, the batch-1 table of every shape (full: S30-S70, G8-G64) with the
  # v17 study, then the decode table with the defaults (v11 / w4 v8) and with v17 for both formats
  s0=$(date +%s); timeout 300 /tmp/gq/wrap/test_cuda_gemv > "$O/test_cuda_gemv.log" 2>&1; echo "test_cuda_gemv rc=$? ($(( $(date +%s) - s0 )) s)"
  grep -E "PASSED|FAILED|configurations|FAIL " "$O/test_cuda_gemv.log" | tail -7
  s0=$(date +%s); timeout 240 gqsa bench kernel --batches 1 --csv "$O/kernel.csv" > "$O/kernel.log" 2>&1
  echo "kernel rc=$? ($(( $(date +%s) - s0 )) s)"
  grep -E "^(gqs_row_v1[17]|w4_dense_v(8|11|17)|v17_r[124]|read_stream|walk_stream|cublas_fp16) " "$O/kernel.log" | awk '$4 == 1 {print $1, $2, $3, $5, $7, $8, $11}' | head -90
  grep -E "v17 rule" "$O/kernel.log" | head -20
  sed -n '/^targets/,$p' "$O/kernel.log" | head -12
  for v in v11 v17; do
    case $v in v11) f="--gemv gqs_row_v11 --w4-gemv w4_dense_v8";; v17) f="--gemv gqs_row_v17 --w4-gemv w4_dense_v17";; esac
    s0=$(date +%s)
    timeout 70 gqsa bench decode --shape llama2-7b --formats fp16,w4,gqs-s50 --lengths 128,1024 $f --csv "$O/decode_$v.csv" > "$O/decode_$v.log" 2>&1
    echo "decode $v rc=$? ($(( $(date +%s) - s0 )) s)"; grep -E "^engine|^fp16|^w4|^gqs" "$O/decode_$v.log" | grep -v "memory:"
  done ;;
v18)
  # the v18 call (PERF.md "v18"): batches 2, 4, 8, 16 of every shape, every kind that has a kernel there
  s0=$(date +%s); timeout 300 gqsa bench kernel --batches 2,4,8,16 --csv "$O/kernel_b2_16.csv" > "$O/kernel_b2_16.log" 2>&1
  echo "kernel rc=$? ($(( $(date +%s) - s0 )) s)"
  grep -E "^(gqs_mma_v18|w4_dense_mma_v18|gqs_row_v(7|11)|w4_dense_v(7|8|11)|cublas_fp16) " "$O/kernel_b2_16.log" | awk '{print $1, $2, $3, $4, $5, $7, $8, $11, $12}' | head -120
  grep -E "info  batch|CHECK FAILED|correctness" "$O/kernel_b2_16.log" | head -12 ;;
probe)
  # Nsight Compute on the 8192^2 kernels named after the phase (mangled), each at its first launch in `gqsa bench
  # kernel --quick --only 8192` (the correctness pass), then the summary sections; batch GQ_PROBE_BATCH (1;
  # v18: GQ_PROBE_BATCH=16 ... probe _Z18gq_gemv_mma_kernelILi16ELi2EEv12gq_gemv_args, first launched on the
  # dense W4 G16 matrix: the same kernel with every mask full)
  shift
  ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  for k in "$@"; do
    s0=$(date +%s); kf=${k//[^A-Za-z0-9_]/_} # a file name without ncu's "regex:" colon
    timeout 120 "$ncu_bin" --clock-control none --kernel-name-base mangled --kernel-name "$k" --launch-count 1 --kill yes \
      --set full env LD_LIBRARY_PATH=/tmp/gq/lib /tmp/gq/bin/gqsa bench kernel --quick --only 8192 --batches "${GQ_PROBE_BATCH:-1}" --reps 20 > "$O/ncu_$kf.txt" 2>&1
    echo "ncu $k rc=$? ($(( $(date +%s) - s0 )) s)"
    grep -E "^    (DRAM Throughput|Duration|Achieved Occupancy|Registers Per Thread|L1/TEX Cache Throughput|L2 Cache Throughput|Warp Cycles Per Issued Instruction|Issued Ipc Active|Executed Instructions  |Block Limit)" "$O/ncu_$kf.txt" | head -16
    grep -iE "stall|smsp__pcsamp" "$O/ncu_$kf.txt" | head -8
  done ;;
collect) collect ;;
esac
