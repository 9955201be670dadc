#!/usr/bin/env bash
# kernel_probe.sh — on the GPU machine (after `. tools/device/stage.sh`): the GEMV kernels' correctness,
# timings of every version in one run, Nsight Compute profiles of the B = 1 row-split kernels (v1 vs v3,
# GQS W4S50 G16 and dense W4 G128 at 8192 x 8192), and the decode table with the v3 kernels. Into $OUT.
set -u
O=${OUT:-/tmp/out}
timeout 300 /tmp/gq/wrap/test_cuda_gemv > "$O/test_cuda_gemv.log" 2>&1; echo "test_cuda_gemv rc=$?"; grep -E "FAIL|PASSED|FAILED" "$O/test_cuda_gemv.log" | tail -5
timeout 300 gqsa bench kernel --quick --csv "$O/kernel.csv" > "$O/kernel.log" 2>&1; echo "kernel rc=$?"
sed -n '/^versions/,$p' "$O/kernel.log"
# ncu: one kernel each, by mangled name (first launch = the correctness check on that matrix), then stop
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for k in _Z18gq_gemv_row_kernelILi16ELi1ELb0EEv12gq_gemv_args _Z19gq_gemv_rowq_kernelILi16ELi1ELb0EEv12gq_gemv_args \
         _Z18gq_gemv_row_kernelILi128ELi1ELb1EEv12gq_gemv_args _Z19gq_gemv_rowq_kernelILi128ELi1ELb1EEv12gq_gemv_args; do
  timeout 120 "$ncu_bin" --clock-control none --kernel-name-base mangled --kernel-name "$k" --launch-count 1 --kill yes \
    --set full env LD_LIBRARY_PATH=/tmp/gq/lib /tmp/gq/bin/gqsa bench kernel --quick --only 8192 --reps 20 > "$O/ncu_$k.txt" 2>&1
  echo "ncu $k rc=$?"
  grep -E "^    (DRAM Throughput|Memory Throughput|L1/TEX Hit Rate|Duration|Achieved Occupancy|Registers Per Thread|L1/TEX Cache Throughput|L2 Cache Throughput|Theoretical Occupancy|Warp Cycles Per Issued Instruction|Issued Ipc Active)" "$O/ncu_$k.txt" | head -14
done
