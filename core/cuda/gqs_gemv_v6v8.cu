/* gqs_gemv_v6v8.cu — the launchers of the shared-memory GEMV designs, v6 (bulk copies, gqs_tma.h) and v8
 * (cp.async ring, gqs_ring.h), for GQS and dense W4, in their own translation unit: their 100 kernel
 * instantiations then compile in parallel with gqs_gemv.cu's and w4_gemv.cu's (`make -j`), not after.
 * Called from gq_gqs_gpu_gemv (gqs_gemv.cu) and gq_w4_gemv_launch (w4_gemv.cu).
 */
#include "gqs_ring.h"
#include "gqs_tma.h"

#define V68_B(B_, G_, DENSE_) return version == 6 ? gq_tma_launch<G_, B_, DENSE_>(m, a, st) : gq_ring_launch<G_, B_, DENSE_>(m, a, st);
template <int G, bool DENSE>
static gq_status launch_g(int version, gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
    GQ_SWITCH_BATCH(gq_batch_tmpl(a.nb), V68_B, G, DENSE)
}

gq_status gq_gemv_launch_v6v8(int version, bool dense, gq_gqs_gpu *m, const gq_gemv_args &a, int G, cudaStream_t st) {
    if (version != 6 && version != 8) return gq_errf(GQ_ERR_ARG, "gqs_gemv: no shared-memory kernel v%d", version);
#define V68_G(G_, DENSE_) return DENSE_ ? launch_g<G_, true>(version, m, a, st) : launch_g<G_, false>(version, m, a, st);
    GQ_SWITCH_G(G, V68_G, dense)
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v%d: unsupported group size %d", version, G);
}
