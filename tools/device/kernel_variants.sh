#!/usr/bin/env bash
# kernel_variants.sh — on the GPU machine (after `. tools/device/stage.sh`): the GEMV correctness test,
# then the batch-1 v3 row-split variants (GQSA_V3 = 0, 2, 3, 4: core/cuda/gqs_dev.h gq_v3_launch_var) timed
# at 8192 x 8192 in one session. Logs go to $OUT/variants.tgz (one file: a call returns a limited number).
set -u
O=${OUT:-/tmp/out}
L=/tmp/variants; rm -rf $L; mkdir -p $L
timeout 300 /tmp/gq/wrap/test_cuda_gemv > $L/test_cuda_gemv.log 2>&1; echo "test_cuda_gemv rc=$?"; grep -E "^FAIL|PASSED|FAILED" $L/test_cuda_gemv.log | tail -4
for v in ${VARIANTS:-0 2 3 4}; do
  GQSA_V3=$v timeout 120 gqsa bench kernel --quick --only 8192 --csv $L/kernel_v3var$v.csv > $L/kernel_v3var$v.log 2>&1
  echo "variant $v rc=$? $(grep -c 'CHECK FAILED' $L/kernel_v3var$v.log) check failures"
  awk '($1=="gqs_row_v3"||$1=="w4_dense_v3"||$1=="gqs_streamk_v3") && $2==8192 && $4==1 {print $1,$5,$6,$7,$8,$11}' $L/kernel_v3var$v.log
done
tar czf "$O/variants.tgz" -C /tmp variants
