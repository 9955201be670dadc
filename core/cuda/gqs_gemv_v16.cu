/* gqs_gemv_v16.cu — the v16 launcher (gqs_ws.h: one producer warp per CTA streaming a range of whole rows
 * of the v11 row stream through a CTA-wide bulk-copy ring, 31 consumer warps computing them) and the build
 * of its per-CTA split. Called from gq_gqs_gpu_gemv / gq_gqs_gpu_prepare (gqs_gemv.cu) and the bench.
 */
#include <stdlib.h>
#include <string.h>

#include "gqs_ws.h"

#define GQ_V16_RING_MAX (192 * 1024) /* the default ring: as much of this as fits beside x */
#define GQ_V16_SLOT_DEFAULT 8192
#define GQ_V16_PIECES_DEFAULT 8 /* bulk copies per slot */

typedef void (*gq_v16_kernel_t)(gq_gemv_args);

static gq_v16_kernel_t v16_kernel(int G, bool dense, bool xs, bool copy_only) {
    if (copy_only) return G == 16 && !dense && !xs ? gq_gemv_ws_kernel<16, false, false, true> : NULL;
#define V16_G(G_, X_)                                                                                    \
    return dense ? (xs ? gq_gemv_ws_kernel<G_, true, true> : gq_gemv_ws_kernel<G_, true, false>)         \
                 : (xs ? gq_gemv_ws_kernel<G_, false, true> : gq_gemv_ws_kernel<G_, false, false>);
    GQ_SWITCH_G(G, V16_G, 0)
#undef V16_G
    return NULL;
}

void gq_gemv_v16_free(gq_gqs_gpu *m) {
    for (int i = 0; i < 2; i++) {
        cudaFree(m->v16[i].wstart);
        memset(&m->v16[i], 0, sizeof m->v16[i]);
    }
}

gq_status gq_gemv_v16_setup(gq_gqs_gpu *m, bool dense) {
    if (!m->stream[dense]) GQ_TRY(gq_gemv_v11_setup(m, dense));
    gq_v16_config c = m->v16_cfg; /* validated by gq_gqs_gpu_set_v16; resolve the defaults */
    if (!c.slot) c.slot = GQ_V16_SLOT_DEFAULT;
    if (!c.ctas) c.ctas = 1;
    if (!c.consumers) c.consumers = 1024 / (32 * c.ctas) - 1;
    if (!c.x) c.x = 1;
    if (!c.pieces) c.pieces = GQ_V16_PIECES_DEFAULT;
    const bool xs = c.x == 2;
    int dev = 0, smem_optin = 0, smem_sm = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&smem_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
    if (!c.ring) { /* the largest whole number of slots that fits, up to GQ_V16_RING_MAX, with c.ctas CTAs per SM */
        const int64_t per_cta = (int64_t)smem_sm / c.ctas - 1024 < smem_optin ? (int64_t)smem_sm / c.ctas - 1024 : smem_optin;
        const int64_t room = per_cta - (int64_t)gq_ws_smem(m->K, 0, c.slot, xs) - 16;
        c.ring = (int)((room < GQ_V16_RING_MAX ? room : GQ_V16_RING_MAX) / (c.slot + 16) * c.slot);
    }
    if (c.ring < 2 * c.slot || c.ring % c.slot)
        return gq_errf(GQ_ERR_ARG, "gqs_gemv v16: ring of %d bytes (expected >= 2 slots of %d, a whole number of them)", c.ring,
                       c.slot);
    const size_t smem = gq_ws_smem(m->K, c.ring, c.slot, xs);
    const gq_v16_kernel_t fn = v16_kernel(m->G, dense, xs, false);
    if (!fn) return gq_errf(GQ_ERR_ARG, "gqs_gemv v16: no kernel for G %d", m->G);
    if (smem > (size_t)smem_optin)
        return gq_errf(GQ_ERR_ARG, "gqs_gemv v16: %zu bytes of shared memory per CTA (the device allows %d)", smem, smem_optin);
    for (int k = 0; k < 2; k++) { /* the kernel and its copy-only twin (bench) run with the same split */
        const gq_v16_kernel_t f = k ? v16_kernel(m->G, dense, xs, true) : fn;
        if (!f) continue;
        CUDA_CHECK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        CUDA_CHECK(cudaFuncSetAttribute(f, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
    }
    int occ = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fn, 32 * (c.consumers + 1), smem));
    if (occ < c.ctas)
        return gq_errf(GQ_ERR_ARG, "gqs_gemv v16: %d CTAs of %d warps and %zu bytes per SM asked, %d fit", c.ctas,
                       c.consumers + 1, smem, occ);
    const int N = m->N;
    int32_t *srow = NULL, *ws = NULL, *fix = NULL;
    int64_t Wg = 0;
    gq_status st = gq_gemv_split_host(m, dense, (int64_t)m->sm_count * c.ctas, 2, &srow, &ws, &fix, &Wg);
    for (int r = 0; r < N && st == GQ_OK; r++) { /* a row must fit the ring less a slot (gqs_ws.h: no deadlock) */
        const int64_t len = (r + 1 < N ? 16 * (int64_t)srow[2 * r + 2] : m->stream_bytes[dense]) - 16 * (int64_t)srow[2 * r];
        if (len > c.ring - c.slot)
            st = gq_errf(GQ_ERR_ARG, "gqs_gemv v16: row %d's stream of %lld bytes does not fit a %d-byte ring less a slot", r,
                         (long long)len, c.ring);
    }
    int4 *dws = NULL;
    cudaError_t ce = cudaSuccess;
    if (st == GQ_OK) {
        ce = cudaMalloc(&dws, (size_t)(Wg + 1) * 16);
        if (ce == cudaSuccess) ce = cudaMemcpy(dws, ws, (size_t)(Wg + 1) * 16, cudaMemcpyHostToDevice);
        if (ce == cudaSuccess) ce = cudaDeviceSynchronize();
        if (ce != cudaSuccess) {
            cudaGetLastError();
            st = gq_errf(GQ_ERR_NOMEM, "gqs_gemv v16 split: %s", cudaGetErrorString(ce));
        }
    }
    free(srow), free(ws), free(fix);
    if (st != GQ_OK) {
        cudaFree(dws);
        return st;
    }
    gq_gqs_gpu::gq_v16_split &d = m->v16[dense];
    cudaFree(d.wstart);
    d.wstart = dws, d.W = Wg, d.c = c, d.slot_log = __builtin_ctz((unsigned)c.slot), d.kernel = fn, d.smem = smem;
    return GQ_OK;
}

gq_status gq_gemv_launch_v16(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st, bool copy_only) {
    if (a.nb != 1 && !copy_only) return gq_gemv_launch_v11(dense, m, a, st);
    const gq_gqs_gpu::gq_v16_split &s = m->v16[dense];
    if (!s.wstart) return gq_errf(GQ_ERR_INTERNAL, "gqs_gemv v16: the split was not built");
    const gq_v16_kernel_t fn = copy_only ? v16_kernel(m->G, dense, s.c.x == 2, true) : s.kernel;
    if (!fn) return gq_errf(GQ_ERR_ARG, "gqs_gemv v16: no copy-only kernel for this matrix (G16 GQS, x from global only)");
    CUDA_CHECK(gq_launch(m->pdl != 0, fn, dim3((unsigned)s.W), dim3(32 * (s.c.consumers + 1)), s.smem, st, gq_v16_args(m, dense, a)));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}
