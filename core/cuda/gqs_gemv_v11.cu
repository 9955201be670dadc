/* gqs_gemv_v11.cu — the v11, v12 and v13/v14 launchers (gqs_stream.h: one contiguous stream per row, read by
 * register loads (v11, batch 1-16), through a per-warp cp.async ring (v12, batch 1), or by a persistent grid
 * of warps each copying one range of it through a ring (v13/v14, batch 1; the split: gq_gqs_stream_split);
 * GQS and dense W4) and the build of its row stream, in their own translation unit (50 instantiations compile in
 * parallel with gqs_gemv.cu's). Called from gq_gqs_gpu_gemv / gq_gqs_gpu_prepare (gqs_gemv.cu).
 *
 * The stream is built on the host by gq_gqs_stream_layout (core/gqs_pack.c, unit-tested on the CPU against
 * the device format) from the device arrays, copied back for it: a one-time cost at prepare (a 7B model's
 * GQS weights, ~3.5 GB, cross PCIe twice), paid only by a matrix that runs v11, which then holds its
 * weights twice on the device (the other kinds keep reading the device format).
 */
#include <stdlib.h>
#include <string.h>

#include "gqs_stream.h"

template <int G, int B, bool DENSE, bool PF = false, int R = 1>
static gq_status launch11(const gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
    constexpr int ROWS = GQ_ROW_WARPS / R; /* rows per CTA */
    const unsigned grid = (unsigned)((a.N + ROWS - 1) / ROWS);
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_stream_kernel<G, B, DENSE, PF, R>, dim3(grid), dim3(32 * GQ_ROW_WARPS), 0, st, a));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

gq_status gq_gemv_launch_v11(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st, int pf) {
    if (!m->stream[dense]) return gq_errf(GQ_ERR_INTERNAL, "gqs_gemv v11: the row stream was not built");
    a.stream = m->stream[dense], a.srow = m->srow[dense];
    if (pf > 0 && a.nb == 1) { /* v15: the next pf rounds prefetched into L2 (batch 1 only) */
        a.pf = pf;
#define V15_G(G_, X_) return dense ? launch11<G_, 1, true, true>(m, a, st) : launch11<G_, 1, false, true>(m, a, st);
        GQ_SWITCH_G(m->G, V15_G, 0)
#undef V15_G
        return gq_errf(GQ_ERR_ARG, "gqs_gemv v15: unsupported group size %d", m->G);
    }
    const int bt = gq_batch_tmpl(a.nb);
#define V11_B(B_, G_) return dense ? launch11<G_, B_, true>(m, a, st) : launch11<G_, B_, false>(m, a, st);
#define V11_G(G_, X_) GQ_SWITCH_BATCH(bt, V11_B, G_)
    GQ_SWITCH_G(m->G, V11_G, 0)
#undef V11_G
#undef V11_B
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v11: unsupported group size %d", m->G);
}

/* ---- v17: v11 with R warps per row (gqs_stream.h) ------------------------------------------------------ */

template <int G, bool DENSE> static int v11_slots(const gq_gqs_gpu *m) { /* v11's resident warps at batch 1 */
    int occ = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_gemv_stream_kernel<G, 1, DENSE>, 32 * GQ_ROW_WARPS, 0) != cudaSuccess)
        cudaGetLastError(), occ = 0;
    return m->sm_count * (occ < 1 ? 1 : occ) * GQ_ROW_WARPS;
}

/* The rule's warps per row for stream [dense] of m, from its row table (gq_gemv_v11_setup, which has it on
 * the host): resolved once, with the stream, so no launch (nor a graph capture) ever queries occupancy. */
static int v17_rule(const gq_gqs_gpu *m, bool dense, const int32_t *srow) {
    int slots = 0;
#define V17_SLOTS(G_, X_) slots = dense ? v11_slots<G_, true>(m) : v11_slots<G_, false>(m); break;
    GQ_SWITCH_G(m->G, V17_SLOTS, 0)
#undef V17_SLOTS
    return gq_gqs_rows_split(m->N, gq_gqs_stream_rounds(srow, m->N), slots > 0 ? slots : 1);
}

extern "C" int gq_gqs_gpu_v17_split(gq_gqs_gpu *m, int dense) {
    dense = dense != 0;
    if (!m->stream[dense]) return 0;
    return m->v17_split ? m->v17_split : m->v17_r[dense];
}

extern "C" gq_status gq_gqs_gpu_set_v17_split(gq_gqs_gpu *m, int R) {
    if (R != 0 && R != 1 && R != 2 && R != 4) return gq_errf(GQ_ERR_ARG, "gqs_gemv v17: %d warps per row (expected 0, 1, 2 or 4)", R);
    m->v17_split = R;
    return GQ_OK;
}

gq_status gq_gemv_launch_v17(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st) {
    const int R = gq_gqs_gpu_v17_split(m, dense);
    if (R == 0) return gq_errf(GQ_ERR_INTERNAL, "gqs_gemv v17: the row stream was not built");
    if (a.nb != 1 || R == 1) return gq_gemv_launch_v11(dense, m, a, st, 0);
    a.stream = m->stream[dense], a.srow = m->srow[dense];
#define V17_R(R_, G_) return dense ? launch11<G_, 1, true, false, R_>(m, a, st) : launch11<G_, 1, false, false, R_>(m, a, st);
#define V17_G(G_, X_)                                                                                      \
    if (R == 2) V17_R(2, G_)                                                                               \
    V17_R(4, G_)
    GQ_SWITCH_G(m->G, V17_G, 0)
#undef V17_G
#undef V17_R
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v17: unsupported group size %d", m->G);
}

template <int G, bool DENSE> static gq_status launch12(const gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
    const unsigned grid = (unsigned)((a.N + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
    static_assert(gq_sring<G, DENSE>::SMEM_B <= 48 * 1024, "v12 ring over the default shared-memory limit");
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_sring_kernel<G, DENSE>, dim3(grid), dim3(32 * GQ_ROW_WARPS),
                         (size_t)gq_sring<G, DENSE>::SMEM_B, st, a));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

gq_status gq_gemv_launch_v12(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st) {
    if (a.nb != 1) return gq_gemv_launch_v11(dense, m, a, st);
    if (!m->stream[dense]) return gq_errf(GQ_ERR_INTERNAL, "gqs_gemv v12: the row stream was not built");
    a.stream = m->stream[dense], a.srow = m->srow[dense];
#define V12_G(G_, X_) return dense ? launch12<G_, true>(m, a, st) : launch12<G_, false>(m, a, st);
    GQ_SWITCH_G(m->G, V12_G, 0)
#undef V12_G
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v12: unsupported group size %d", m->G);
}

gq_status gq_gemv_download_format(const gq_gqs_gpu *m, gq_gqs_dev *d) {
    memset(d, 0, sizeof *d);
    if (!m->codes) return gq_errf(GQ_ERR_ARG, "gqs_gemv: the device format was freed (gq_gqs_gpu_keep_only)");
    d->N = m->N, d->K = m->K, d->G = m->G, d->bits = 4, d->n_units = m->U, d->n_slots = m->S;
    const size_t nu = (size_t)m->U, ns = (size_t)m->S;
    d->row_unit = (int32_t *)malloc((size_t)(m->N + 1) * 4);
    d->codes = (uint8_t *)malloc(nu * 16 + 16);
    d->col = (uint16_t *)malloc(ns * 2 + 16);
    d->sm = (uint32_t *)malloc(ns * 4 + 16);
    if (!d->row_unit || !d->codes || !d->col || !d->sm) {
        gq_gqs_dev_free(d);
        return gq_errf(GQ_ERR_NOMEM, "gqs_gemv: out of host memory for the device format (%lld units)", (long long)m->U);
    }
    cudaError_t ce = cudaMemcpy(d->row_unit, m->row_unit, (size_t)(m->N + 1) * 4, cudaMemcpyDeviceToHost);
    if (ce == cudaSuccess) ce = cudaMemcpy(d->codes, m->codes, nu * 16, cudaMemcpyDeviceToHost);
    if (ce == cudaSuccess) ce = cudaMemcpy(d->col, m->col, ns * 2, cudaMemcpyDeviceToHost);
    if (ce == cudaSuccess) ce = cudaMemcpy(d->sm, m->sm, ns * 4, cudaMemcpyDeviceToHost);
    if (ce != cudaSuccess) {
        cudaGetLastError();
        gq_gqs_dev_free(d);
        return gq_errf(GQ_ERR_NOMEM, "gqs_gemv: device format to the host: %s", cudaGetErrorString(ce));
    }
    return GQ_OK;
}

gq_status gq_gemv_v11_setup(gq_gqs_gpu *m, bool dense) {
    cudaFree(m->stream[dense]), cudaFree(m->srow[dense]);
    m->stream[dense] = NULL, m->srow[dense] = NULL, m->stream_bytes[dense] = 0;
    gq_gqs_dev d; /* the device format back on the host, as gq_gqs_stream_layout reads it */
    GQ_TRY(gq_gemv_download_format(m, &d));
    int32_t *srow = (int32_t *)malloc((size_t)(m->N ? m->N : 1) * 8);
    uint8_t *host = NULL;
    gq_status s = srow ? GQ_OK : gq_errf(GQ_ERR_NOMEM, "gqs v11 stream: out of host memory");
    cudaError_t ce = cudaSuccess;
    int64_t bytes = 0;
    if (s == GQ_OK && ce == cudaSuccess) s = gq_gqs_stream_layout(&d, dense, srow, NULL, &bytes);
    if (s == GQ_OK && ce == cudaSuccess) {
        host = (uint8_t *)malloc((size_t)bytes + 16);
        if (!host) s = gq_errf(GQ_ERR_NOMEM, "gqs v11 stream: out of host memory (%lld bytes)", (long long)bytes);
        else s = gq_gqs_stream_layout(&d, dense, srow, host, &bytes);
    }
    uint4 *ds = NULL;
    int2 *dr = NULL;
    if (s == GQ_OK && ce == cudaSuccess) {
        ce = cudaMalloc(&ds, (size_t)bytes + 16);
        if (ce == cudaSuccess) ce = cudaMalloc(&dr, (size_t)(m->N ? m->N : 1) * sizeof(int2));
        if (ce == cudaSuccess && bytes) ce = cudaMemcpy(ds, host, (size_t)bytes, cudaMemcpyHostToDevice);
        if (ce == cudaSuccess && m->N) ce = cudaMemcpy(dr, srow, (size_t)m->N * sizeof(int2), cudaMemcpyHostToDevice);
        /* a pageable copy may return before its DMA lands; callers launch on streams not ordered after it */
        if (ce == cudaSuccess) ce = cudaDeviceSynchronize();
    }
    if (s == GQ_OK && ce != cudaSuccess) {
        cudaGetLastError();
        s = gq_errf(GQ_ERR_NOMEM, "gqs v11 stream: %s", cudaGetErrorString(ce));
    }
    if (s == GQ_OK) {
        m->stream[dense] = ds, m->srow[dense] = dr, m->stream_bytes[dense] = bytes;
        m->v17_r[dense] = v17_rule(m, dense, srow);
    }
    else cudaFree(ds), cudaFree(dr);
    gq_gqs_dev_free(&d);
    free(srow), free(host);
    return s;
}

/* ---- v13: the split of the stream over a persistent grid, and its launcher ------------------------------ */

/* The default ring per warp and the ring sizes there are kernels for. */
#define GQ_V13_RING_DEFAULT 8192

int gq_v13_split_index(int kind) {
    switch (kind) {
    case GQ_GEMV_ROW_V13: return 0;
    case GQ_GEMV_TASK_V13: return 1;
    case GQ_GEMV_DENSE_W4_V13: return 2;
    case GQ_GEMV_ROW_V14: return 3;
    case GQ_GEMV_TASK_V14: return 4;
    case GQ_GEMV_DENSE_W4_V14: return 5;
    }
    return -1;
}

typedef void (*gq_v13_kernel_t)(gq_gemv_args);

/* The kernel of (G, dense, ring, copy engine), and its shared memory per CTA at K (v14: x in shared memory
 * too); NULL for a ring size there is no kernel for. */
template <int G, bool DENSE> static gq_v13_kernel_t v13_fn(int ring, bool bulk, int K, size_t *smem) {
#define V13_RB(RB_)                                                                                       \
    case RB_:                                                                                             \
        *smem = bulk ? gq_skring_smem<gq_v14_ring<G, DENSE, RB_>, true>(K) : gq_skring_smem<gq_v13_ring<G, DENSE, RB_>, false>(K); \
        return bulk ? gq_gemv_skring_kernel<G, DENSE, gq_v14_ring<G, DENSE, RB_>, false, true>          \
                    : gq_gemv_skring_kernel<G, DENSE, gq_v13_ring<G, DENSE, RB_>>;
    switch (ring) {
        V13_RB(4096)
        V13_RB(8192)
        V13_RB(16384)
    }
#undef V13_RB
    return NULL;
}
static gq_v13_kernel_t v13_kernel(int G, bool dense, int ring, bool bulk, int K, size_t *smem) {
#define V13_FN(G_, X_) return dense ? v13_fn<G_, true>(ring, bulk, K, smem) : v13_fn<G_, false>(ring, bulk, K, smem);
    GQ_SWITCH_G(G, V13_FN, 0)
#undef V13_FN
    return NULL;
}

void gq_gemv_v13_free(gq_gqs_gpu *m) {
    for (int i = 0; i < 6; i++) {
        gq_gqs_gpu::gq_v13_split &s = m->v13[i];
        cudaFree(s.wstart), cudaFree(s.sfix), cudaFree(s.rec), cudaFree(s.cnt);
        memset(&s, 0, sizeof s);
    }
}

gq_status gq_gemv_split_host(const gq_gqs_gpu *m, bool dense, int64_t W, int mode, int32_t **srow, int32_t **wstart,
                             int32_t **rfix, int64_t *Wg) {
    const int N = m->N;
    *srow = (int32_t *)malloc((size_t)(N ? N : 1) * 8), *wstart = (int32_t *)malloc((size_t)(W + 1) * 16);
    *rfix = (int32_t *)malloc((size_t)(N ? N : 1) * 8);
    if (!*srow || !*wstart || !*rfix) return gq_errf(GQ_ERR_NOMEM, "gqs_gemv stream split: out of host memory");
    if (N) CUDA_CHECK(cudaMemcpy(*srow, m->srow[dense], (size_t)N * 8, cudaMemcpyDeviceToHost));
    return gq_gqs_stream_split(*srow, N, m->G, dense, W, mode, *wstart, *rfix, Wg);
}

gq_status gq_gemv_v13_setup(gq_gqs_gpu *m, int idx) {
    const bool dense = idx % 3 == 2, bulk = idx >= 3;
    if (!m->stream[dense]) GQ_TRY(gq_gemv_v11_setup(m, dense));
    const int ring = m->v13_ring ? m->v13_ring : GQ_V13_RING_DEFAULT;
    size_t smem = 0;
    const gq_v13_kernel_t fn = v13_kernel(m->G, dense, ring, bulk, m->K, &smem);
    if (!fn) return gq_errf(GQ_ERR_ARG, "gqs_gemv v13: no kernel for G %d, ring %d bytes", m->G, ring);
    CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int occ = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fn, 32 * GQ_ROW_WARPS, smem));
    if (occ < 1) return gq_errf(GQ_ERR_ARG, "gqs_gemv v13: a CTA with a %d-byte ring per warp does not fit an SM", ring);
    const int ctas = m->v13_ctas > 0 && m->v13_ctas < occ ? m->v13_ctas : occ;
    /* the grid is persistent: all its CTAs must be resident at once, so ask for the shared-memory carve-out
     * that holds them (the driver's own choice may hold fewer, and the grid would run in two waves) */
    int dev = 0, smem_sm = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&smem_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
    const int carve = (int)(((int64_t)ctas * ((int64_t)smem + 1024) * 100 + smem_sm - 1) / smem_sm);
    CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributePreferredSharedMemoryCarveout, carve > 100 ? 100 : carve));
    int64_t W = (int64_t)m->sm_count * ctas * GQ_ROW_WARPS;
    if (m->max_flat_workers > 0 && W > m->max_flat_workers) W = m->max_flat_workers; /* tests: long ranges */
    const int N = m->N;
    int32_t *srow = NULL, *ws = NULL, *fix = NULL;
    int64_t Wg = 0;
    gq_status st = gq_gemv_split_host(m, dense, W, idx % 3 != 0, &srow, &ws, &fix, &Wg);
    cudaError_t ce = cudaSuccess;
    gq_gqs_gpu::gq_v13_split s;
    memset(&s, 0, sizeof s);
    if (st == GQ_OK && ce == cudaSuccess) {
        ce = cudaMalloc(&s.wstart, (size_t)(Wg + 1) * 16);
        if (ce == cudaSuccess) ce = cudaMalloc(&s.sfix, (size_t)(N ? N : 1) * 8);
        if (ce == cudaSuccess) ce = cudaMalloc(&s.rec, (size_t)(2 * Wg) * 4);
        if (ce == cudaSuccess) ce = cudaMalloc(&s.cnt, (size_t)(N ? N : 1) * 4);
        if (ce == cudaSuccess) ce = cudaMemcpy(s.wstart, ws, (size_t)(Wg + 1) * 16, cudaMemcpyHostToDevice);
        if (ce == cudaSuccess && N) ce = cudaMemcpy(s.sfix, fix, (size_t)N * 8, cudaMemcpyHostToDevice);
        if (ce == cudaSuccess) ce = cudaMemset(s.cnt, 0, (size_t)(N ? N : 1) * 4);
        if (ce == cudaSuccess) ce = cudaDeviceSynchronize();
    }
    if (st == GQ_OK && ce != cudaSuccess) {
        cudaGetLastError();
        st = gq_errf(GQ_ERR_NOMEM, "gqs_gemv v13 split: %s", cudaGetErrorString(ce));
    }
    free(srow), free(ws), free(fix);
    if (st != GQ_OK) {
        cudaFree(s.wstart), cudaFree(s.sfix), cudaFree(s.rec), cudaFree(s.cnt);
        return st;
    }
    gq_gqs_gpu::gq_v13_split &d = m->v13[idx];
    cudaFree(d.wstart), cudaFree(d.sfix), cudaFree(d.rec), cudaFree(d.cnt);
    s.W = Wg, s.ring = ring, s.ctas = ctas, s.kernel = fn, s.smem = smem;
    d = s;
    return GQ_OK;
}

gq_status gq_gemv_launch_v13(int idx, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st) {
    if (a.nb != 1) return gq_gemv_launch_v11(idx % 3 == 2, m, a, st);
    const gq_gqs_gpu::gq_v13_split &s = m->v13[idx];
    if (!s.wstart) return gq_errf(GQ_ERR_INTERNAL, "gqs_gemv v13: the split was not built");
    const unsigned grid = (unsigned)((s.W + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
    CUDA_CHECK(gq_launch(m->pdl != 0, s.kernel, dim3(grid), dim3(32 * GQ_ROW_WARPS), s.smem, st, gq_v13_args(m, idx, a)));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}
