/* w4_gemv.cu — the dense per-group W4 baseline: every group kept, no column indices, no row offsets;
 * the same codes, unit decoder and row split as the GQS kernel (v2: gqs_flat.h, v1: gqs_dev.h), so the
 * comparison isolates
 * what sparsity and its metadata cost or save. Used by gq_gqs_gpu_gemv(GQ_GEMV_DENSE_W4) and the benchmark
 * (at G = 128, the usual W4 baseline, and at the GQS run's G).
 * Must not: grow its own copy of the dequantization (one implementation, in gqs_dev.h).
 */
#include "gqs_flat.h"

template <int G, int B> static gq_status launch_dense(gq_gqs_gpu *m, const gq_gemv_args &a, int ver, cudaStream_t st) {
    if (ver == 2) return gq_flat_launch<G, B, true, 0>(m, a, st);
    const unsigned grid = (unsigned)((a.N + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
    if (ver == 3) CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_rowq_kernel<G, B, true>, grid, 32 * GQ_ROW_WARPS, 0, st, a));
    else if (ver == 7) CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_rowq_kernel<G, B, true, true>, grid, 32 * GQ_ROW_WARPS, 0, st, a));
    else gq_gemv_row_kernel<G, B, true><<<grid, 32 * GQ_ROW_WARPS, 0, st>>>(a);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

#define W4_B(B_, G_) return launch_dense<G_, B_>(m, a, ver, st);
template <int G> static gq_status launch_dense_g(gq_gqs_gpu *m, const gq_gemv_args &a, int ver, cudaStream_t st) {
    GQ_SWITCH_BATCH(gq_batch_tmpl(a.nb), W4_B, G)
}

gq_status gq_w4_gemv_launch(gq_gqs_gpu *m, const gq_gemv_args &a, int G, int ver, cudaStream_t st) {
    if (a.K % 32) return gq_errf(GQ_ERR_ARG, "w4_gemv: K=%d is not a multiple of 32", a.K);
    if (ver == 6 || ver == 8) return gq_gemv_launch_v6v8(ver, true, m, a, G, st);
    if (ver == 9) { /* v7 where v9 does not apply */
        int launched = 0;
        const gq_status s9 = gq_gemv_launch_v9(true, m, a, G, st, &launched);
        if (s9 != GQ_OK || launched) return s9;
        ver = 7;
    }
#define W4_G(G_, X_) return launch_dense_g<G_>(m, a, ver, st);
    GQ_SWITCH_G(G, W4_G, 0)
    return gq_errf(GQ_ERR_ARG, "w4_gemv: unsupported group size %d", G);
}
