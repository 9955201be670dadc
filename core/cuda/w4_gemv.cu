/* w4_gemv.cu — the dense per-group W4 baseline: every group kept, no column indices, no row offsets;
 * the same codes, unit decoder and row split as the GQS kernel (gqs_dev.h), so the comparison isolates
 * what sparsity and its metadata cost or save. Used by gq_gqs_gpu_gemv(GQ_GEMV_DENSE_W4) and the benchmark
 * (at G = 128, the usual W4 baseline, and at the GQS run's G).
 * Must not: grow its own copy of the dequantization (one implementation, in gqs_dev.h).
 */
#include "gqs_dev.h"

template <int G, int B> static gq_status launch_dense(const gq_gemv_args &a, cudaStream_t st) {
    const unsigned grid = (unsigned)((a.N + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
    gq_gemv_row_kernel<G, B, true><<<grid, 32 * GQ_ROW_WARPS, 0, st>>>(a);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

template <int G> static gq_status launch_dense_g(const gq_gemv_args &a, cudaStream_t st) {
    switch (gq_batch_tmpl(a.nb)) {
    case 1: return launch_dense<G, 1>(a, st);
    case 2: return launch_dense<G, 2>(a, st);
    case 4: return launch_dense<G, 4>(a, st);
    case 8: return launch_dense<G, 8>(a, st);
    default: return launch_dense<G, 16>(a, st);
    }
}

gq_status gq_w4_gemv_launch(const gq_gemv_args &a, int G, cudaStream_t st) {
    if (a.K % 32) return gq_errf(GQ_ERR_ARG, "w4_gemv: K=%d is not a multiple of 32", a.K);
    switch (G) {
    case 8: return launch_dense_g<8>(a, st);
    case 16: return launch_dense_g<16>(a, st);
    case 32: return launch_dense_g<32>(a, st);
    case 64: return launch_dense_g<64>(a, st);
    case 128: return launch_dense_g<128>(a, st);
    }
    return gq_errf(GQ_ERR_ARG, "w4_gemv: unsupported group size %d", G);
}
