/* gqs_gemv_v6v8.cu — the launchers of the shared-memory GEMV designs, v6 (bulk copies, gqs_tma.h) and v8
 * (cp.async ring, gqs_ring.h), for GQS and dense W4, in their own translation unit: their 100 kernel
 * instantiations then compile in parallel with gqs_gemv.cu's and w4_gemv.cu's (`make -j`), not after.
 * Called from gq_gqs_gpu_gemv (gqs_gemv.cu) and gq_w4_gemv_launch (w4_gemv.cu).
 */
#include "gqs_ring.h"
#include "gqs_tma.h"

template <int G, bool DENSE>
static gq_status launch_g(int version, gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
#define GQ_V68(B_) (version == 6 ? gq_tma_launch<G, B_, DENSE>(m, a, st) : gq_ring_launch<G, B_, DENSE>(m, a, st))
    switch (gq_batch_tmpl(a.nb)) {
    case 1: return GQ_V68(1);
    case 2: return GQ_V68(2);
    case 4: return GQ_V68(4);
    case 8: return GQ_V68(8);
    default: return GQ_V68(16);
    }
#undef GQ_V68
}

gq_status gq_gemv_launch_v6v8(int version, bool dense, gq_gqs_gpu *m, const gq_gemv_args &a, int G, cudaStream_t st) {
    if (version != 6 && version != 8) return gq_errf(GQ_ERR_ARG, "gqs_gemv: no shared-memory kernel v%d", version);
    switch (G) {
    case 8: return dense ? launch_g<8, true>(version, m, a, st) : launch_g<8, false>(version, m, a, st);
    case 16: return dense ? launch_g<16, true>(version, m, a, st) : launch_g<16, false>(version, m, a, st);
    case 32: return dense ? launch_g<32, true>(version, m, a, st) : launch_g<32, false>(version, m, a, st);
    case 64: return dense ? launch_g<64, true>(version, m, a, st) : launch_g<64, false>(version, m, a, st);
    case 128: return dense ? launch_g<128, true>(version, m, a, st) : launch_g<128, false>(version, m, a, st);
    }
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v%d: unsupported group size %d", version, G);
}
