/* gqs_tma.h — the v6 GEMV kernels (GQS row split and dense W4): each warp streams its rows' weights into
 * its own shared-memory ring with bulk copies (core/cuda/tma.cuh) instead of register loads. CUDA C++
 * only; dispatched from gqs_gemv.cu (GQ_GEMV_ROW_V6) and w4_gemv.cu (GQ_GEMV_DENSE_W4_V6).
 *
 * Why (docs/PERF.md "v6"): v3/v5 are bound by bytes in flight. A register load keeps its bytes in
 * registers until they arrive, so a warp waits one DRAM latency per round of 4 quads per lane, and the
 * H200 (4.2 TB/s) ran v3 at 43-50% of its copy bandwidth where the H100 reached 59-71% with the same
 * code. Here lane 0 of each warp issues three bulk copies per chunk of GQ_TMA_CU units (codes, the
 * chunk's scale|min words, its column indices; 16-byte widened spans, so any row start works), for
 * GQ_TMA_NST chunks ahead: at 8192 x 8192 S50 G16 a row is 128 units, the whole row in flight at once
 * (3.7 KB per warp) against v3's 0.9 KB. Consumers read the chunk from shared memory (one 16-byte LDS
 * of codes per unit) and run the same unit decoder as v1 (gqs_dev.h gq_unit), lane l taking units
 * l, l + 32, ... of each row in order: the result equals the v1 row split bit for bit (the test checks).
 * Work split: a persistent grid (#SMs x the CTAs that fit), warp w takes rows w, w + W, ... of the
 * longest-first order (W warps in the grid; the test's worker cap forces many rows per warp). The ring
 * runs across row boundaries: while a warp computes a row's last chunk, the next row's first is landing.
 * Measured (PERF.md "v5 and v6 measured"): slower than v3 everywhere on the H200 (8192^2 S50 G16 layer
 * 19.94 vs 15.59 us): 56 registers leave 36 warps per SM and the instructions are v1's; kept so the
 * benchmark shows it beside the others.
 * Must not: run on a device older than sm_90 (the launcher checks), allocate or synchronise (graph
 * capture), read x before gq_pdl_wait() (the weights may be fetched before it, PDL in decode).
 */
#ifndef GQ_CUDA_GQS_TMA_H
#define GQ_CUDA_GQS_TMA_H

#include "gqs_dev.h"
#include "tma.cuh"

#define GQ_TMA_WARPS 4 /* warps per CTA (each with its own ring: no CTA-wide synchronisation at all) */
#define GQ_TMA_CU 64   /* units per chunk: 2 per lane */
#define GQ_TMA_NST 2   /* chunks in flight per warp */

/* Bytes of one chunk's buffers for group size G (16-byte multiples, so every buffer starts aligned). */
template <int G> struct gq_tma_geom {
    static constexpr int NS = gq_ns<G>::value;    /* slots per unit (G <= 32) */
    static constexpr int UPS = G <= 32 ? 1 : G / 32; /* units per slot (G >= 64) */
    static constexpr int SLOTS = G <= 32 ? GQ_TMA_CU * NS : GQ_TMA_CU / UPS + 1; /* most slots a chunk touches */
    static constexpr int CODES_B = GQ_TMA_CU * 16;
    static constexpr int SM_B = (4 * SLOTS + 24 + 15) / 16 * 16;  /* + up to 12 bytes widened at each end */
    static constexpr int COL_B = (2 * SLOTS + 28 + 15) / 16 * 16; /* + up to 14 */
    static constexpr int STAGE_B = CODES_B + SM_B + COL_B;
    static constexpr int WARP_B = GQ_TMA_NST * STAGE_B;
    static constexpr int SMEM_B = GQ_TMA_WARPS * (WARP_B + GQ_TMA_NST * 8); /* + the barriers */
};
template <int G> __device__ __forceinline__ int64_t gq_tma_slot(int64_t u) {
    return G <= 32 ? u * gq_ns<G>::value : u / (G / 32);
}

/* Lane j holds (row, first unit, end unit) of the warp's row base + j; rows k of warp gw are
 * order[gw + k * W]. Refilled 32 rows at a time (warp-uniform k). */
struct gq_tma_rows {
    int base, r, lo, hi;
};
template <bool DENSE>
__device__ __forceinline__ void gq_tma_rows_fill(const gq_gemv_args &a, gq_tma_rows &c, int k, int64_t gw, int64_t W, int lane) {
    c.base = k;
    const int64_t idx = gw + (int64_t)(k + lane) * W;
    c.r = 0, c.lo = 0, c.hi = 0;
    if (idx < a.N) {
        c.r = (!DENSE && a.row_order) ? __ldg(a.row_order + idx) : (int)idx;
        if constexpr (DENSE) c.lo = c.r * (a.K / 32), c.hi = c.lo + a.K / 32;
        else c.lo = __ldg(a.row_unit + c.r), c.hi = __ldg(a.row_unit + c.r + 1);
    }
}
template <bool DENSE>
__device__ __forceinline__ void gq_tma_row(const gq_gemv_args &a, gq_tma_rows &c, int k, int64_t gw, int64_t W, int lane,
                                           int &r, int &lo, int &hi) {
    if (k < c.base || k >= c.base + 32) gq_tma_rows_fill<DENSE>(a, c, k, gw, W, lane);
    r = __shfl_sync(0xFFFFFFFFu, c.r, k - c.base);
    lo = __shfl_sync(0xFFFFFFFFu, c.lo, k - c.base);
    hi = __shfl_sync(0xFFFFFFFFu, c.hi, k - c.base);
}

/* The producer's cursor: the next unit to copy (pu) of the warp's row pk, which ends at phi. */
struct gq_tma_prod {
    int k, u, hi, done;
    gq_tma_rows rows;
};

/* Copy the producer's next chunk into ring buffer `stage` (lane 0 issues; every lane advances the
 * cursor identically). Returns without issuing once the warp's rows are exhausted. */
template <int G, bool DENSE>
__device__ __forceinline__ void gq_tma_produce(const gq_gemv_args &a, gq_tma_prod &p, unsigned char *wbuf, uint64_t *bar,
                                               int stage, int64_t gw, int64_t W, int lane) {
    using GM = gq_tma_geom<G>;
    while (!p.done && p.u >= p.hi) { /* next row with units */
        p.k++;
        if (gw + (int64_t)p.k * W >= a.N) {
            p.done = 1;
            break;
        }
        int r;
        gq_tma_row<DENSE>(a, p.rows, p.k, gw, W, lane, r, p.u, p.hi);
    }
    if (p.done) return;
    const int u0 = p.u, u1 = p.hi - p.u > GQ_TMA_CU ? p.u + GQ_TMA_CU : p.hi;
    p.u = u1;
    if (lane != 0) return;
    unsigned char *sb = wbuf + stage * GM::STAGE_B;
    const int64_t s0 = gq_tma_slot<G>(u0), s1 = gq_tma_slot<G>(u1 - 1) + (G <= 32 ? GM::NS : 1);
    const uint32_t bc = (uint32_t)(u1 - u0) * 16;
    const int64_t sa = (4 * s0) & ~(int64_t)15, se = (4 * s1 + 15) & ~(int64_t)15;
    const int64_t ca = (2 * s0) & ~(int64_t)15, ce = (2 * s1 + 15) & ~(int64_t)15;
    const uint32_t bs = (uint32_t)(se - sa), bl = DENSE ? 0u : (uint32_t)(ce - ca);
    gq_mbar_expect_tx(bar + stage, bc + bs + bl);
    gq_bulk_g2s(sb, a.codes + u0, bc, bar + stage);
    gq_bulk_g2s(sb + GM::CODES_B, reinterpret_cast<const char *>(a.sm) + sa, bs, bar + stage);
    if (!DENSE) gq_bulk_g2s(sb + GM::CODES_B + GM::SM_B, reinterpret_cast<const char *>(a.col) + ca, bl, bar + stage);
}

/* The metadata of unit u (chunk-relative index j = u - u0) from the staged buffers; ss/cs point at the
 * chunk's first slot. The vector widths match the alignment the widening leaves (G8: 16/8 B, G16: 8/4 B). */
template <int G, bool DENSE>
__device__ __forceinline__ void gq_tma_meta(const uint32_t *ss, const uint16_t *cs, int64_t u, int64_t s0,
                                            uint32_t (&sm)[gq_ns<G>::value], uint32_t (&col)[gq_ns<G>::value]) {
    const int j = (int)(gq_tma_slot<G>(u) - s0);
    if constexpr (G == 8) {
        const uint4 s = *reinterpret_cast<const uint4 *>(ss + j);
        sm[0] = s.x, sm[1] = s.y, sm[2] = s.z, sm[3] = s.w;
        if constexpr (!DENSE) {
            const uint2 c = *reinterpret_cast<const uint2 *>(cs + j);
            col[0] = c.x & 0xFFFF, col[1] = c.x >> 16, col[2] = c.y & 0xFFFF, col[3] = c.y >> 16;
        }
    } else if constexpr (G == 16) {
        const uint2 s = *reinterpret_cast<const uint2 *>(ss + j);
        sm[0] = s.x, sm[1] = s.y;
        if constexpr (!DENSE) {
            const uint32_t c = *reinterpret_cast<const uint32_t *>(cs + j);
            col[0] = c & 0xFFFF, col[1] = c >> 16;
        }
    } else {
        sm[0] = ss[j];
        if constexpr (!DENSE) col[0] = cs[j];
    }
    if constexpr (DENSE)
#pragma unroll
        for (int i = 0; i < gq_ns<G>::value; i++) col[i] = 0;
}

template <int G, int B, bool DENSE>
__global__ void __launch_bounds__(32 * GQ_TMA_WARPS) gq_gemv_tma_kernel(const gq_gemv_args a) {
    using GM = gq_tma_geom<G>;
    extern __shared__ __align__(128) unsigned char gq_tma_smem[];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    unsigned char *wbuf = gq_tma_smem + wid * GM::WARP_B;
    uint64_t *bar = reinterpret_cast<uint64_t *>(gq_tma_smem + GQ_TMA_WARPS * GM::WARP_B) + wid * GQ_TMA_NST;
    const int64_t W = (int64_t)gridDim.x * GQ_TMA_WARPS, gw = (int64_t)blockIdx.x * GQ_TMA_WARPS + wid;
    if (gw >= a.N) {
        gq_pdl_wait();
        gq_pdl_trigger();
        return;
    }
    if (lane == 0) {
#pragma unroll
        for (int s = 0; s < GQ_TMA_NST; s++) gq_mbar_init(bar + s, 1);
        gq_mbar_init_fence();
    }
    __syncwarp();
    gq_tma_prod p;
    p.rows.base = 1 << 30; /* empty cache */
    p.k = 0, p.done = 0;
    {
        int r;
        gq_tma_row<DENSE>(a, p.rows, 0, gw, W, lane, r, p.u, p.hi);
    }
    gq_tma_rows cr = p.rows; /* the consumer's cache starts where the producer's is */
    /* weights only before the dependency wait: the first NST chunks are in flight during the previous
     * kernel's tail */
#pragma unroll
    for (int s = 0; s < GQ_TMA_NST; s++) gq_tma_produce<G, DENSE>(a, p, wbuf, bar, s, gw, W, lane);
    gq_pdl_wait();
    gq_pdl_trigger();
    int stage = 0;
    uint32_t phase = 0;
    for (int k = 0; gw + (int64_t)k * W < a.N; k++) {
        int r, lo, hi;
        gq_tma_row<DENSE>(a, cr, k, gw, W, lane, r, lo, hi);
        float acc[B];
#pragma unroll
        for (int b = 0; b < B; b++) acc[b] = 0.f;
        for (int u0 = lo; u0 < hi; u0 += GQ_TMA_CU) {
            const int u1 = hi - u0 > GQ_TMA_CU ? u0 + GQ_TMA_CU : hi;
            const unsigned char *sb = wbuf + stage * GM::STAGE_B;
            const int64_t s0 = gq_tma_slot<G>(u0);
            const uint4 *cc = reinterpret_cast<const uint4 *>(sb);
            const uint32_t *ss = reinterpret_cast<const uint32_t *>(sb + GM::CODES_B) + (s0 & 3);
            const uint16_t *cs = reinterpret_cast<const uint16_t *>(sb + GM::CODES_B + GM::SM_B) + (s0 & 7);
            gq_mbar_wait(bar + stage, phase);
#pragma unroll
            for (int i = 0; i < GQ_TMA_CU / 32; i++) {
                const int u = u0 + lane + 32 * i;
                if (u < u1) {
                    uint32_t sm[gq_ns<G>::value], col[gq_ns<G>::value];
                    gq_tma_meta<G, DENSE>(ss, cs, u, s0, sm, col);
                    gq_unit<G, B, DENSE>(a, u, (u - lo) * 32, cc[u - u0], sm, col, acc);
                }
            }
            __syncwarp(); /* every lane is done with this buffer ... */
            if (lane == 0) gq_fence_proxy_async(); /* ... before the bulk copy that refills it */
            gq_tma_produce<G, DENSE>(a, p, wbuf, bar, stage, gw, W, lane);
            if (++stage == GQ_TMA_NST) stage = 0, phase ^= 1;
        }
        gq_warp_sum<B>(acc);
        gq_store_row<B>(a, r, lane, acc);
    }
}

/* Persistent grid: #SMs x the CTAs that fit (registers, shared memory), at most one warp per row, and at
 * most m->max_flat_workers warps when the test sets that cap (many rows per warp, the ring crossing rows). */
template <int G, int B, bool DENSE> static gq_status gq_tma_launch(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
    using GM = gq_tma_geom<G>;
    static_assert(GM::SMEM_B <= 48 * 1024, "the rings fit the default dynamic shared memory (no opt-in)");
    static int occ = 0; /* per instantiation; the device does not change within a process */
    if (occ == 0) {
        int dev = 0, major = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        if (major < 9) return gq_errf(GQ_ERR_UNSUPPORTED, "gqs_gemv v6: needs bulk copies (sm_90), device is sm_%d", major * 10);
        int o = 0;
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, gq_gemv_tma_kernel<G, B, DENSE>, 32 * GQ_TMA_WARPS, GM::SMEM_B));
        occ = o < 1 ? 1 : o;
    }
    int64_t ctas = (a.N + GQ_TMA_WARPS - 1) / GQ_TMA_WARPS;
    if (ctas > (int64_t)m->sm_count * occ) ctas = (int64_t)m->sm_count * occ;
    if (m->max_flat_workers > 0 && ctas * GQ_TMA_WARPS > m->max_flat_workers)
        ctas = (m->max_flat_workers + GQ_TMA_WARPS - 1) / GQ_TMA_WARPS;
    if (ctas < 1) ctas = 1;
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_tma_kernel<G, B, DENSE>, dim3((unsigned)ctas), dim3(32 * GQ_TMA_WARPS),
                         (size_t)GM::SMEM_B, st, a));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

#endif
