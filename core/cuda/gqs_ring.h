/* gqs_ring.h — the v8 GEMV kernels (GQS row split and dense W4): v7's quad walk and arithmetic, with each
 * warp's weights streamed through its own ring of GQ_RING_NST rounds in shared memory by cp.async
 * (LDGSTS) instead of register loads. CUDA C++ only; dispatched from gqs_gemv.cu (GQ_GEMV_ROW_V8) and
 * w4_gemv.cu (GQ_GEMV_DENSE_W4_V8).
 *
 * Why (docs/PERF.md "v7 measured"): v7 runs 32 % fewer instructions than v3 and is now bound by the DRAM
 * latency of each round: a register load holds its registers until the data arrives, so a warp has one
 * round (4 quads per lane) in flight and waits a full latency per round (4 rounds per 8192-wide S50 row).
 * cp.async writes shared memory and holds no registers: the warp keeps GQ_RING_NST rounds in flight (3 of
 * the 4 rounds of such a row at once) and computes round i while rounds i+1.. land. Unlike v6 (bulk
 * copies, per-unit lanes), it keeps v7's mapping (lane l: quads l + 32 q of each round, x reads
 * coalesced over 32 consecutive quads) and arithmetic, at 40 warps per SM.
 * Measured (PERF.md "v8 measured"): slower than v7 for GQS (the copies add ~35% instructions and the
 * stall that is left is the x gather, not the weights); faster for dense W4, whose rows are long and
 * whose x addresses need no column load: the dense W4 decode default.
 * Round i of a segment (quads [128 i, 128 i + 128) at UNR 4) is copied in 16-byte pieces by the warp's
 * lanes: its codes (512 bytes at UNR 4: one piece per lane) and the 16-byte-widened spans of its scale|min words
 * and column indices (the round's first slot then sits at a small offset inside the first piece).
 * Lanes past the segment end compute on the padding after it (as v7): every result is bit-identical to
 * v7 and v3 (test_cuda_gemv checks).
 * Must not: read x before gq_pdl_wait() (weights may be fetched before it), allocate or synchronise.
 */
#ifndef GQ_CUDA_GQS_RING_H
#define GQ_CUDA_GQS_RING_H

#include "gqs_dev.h"

#define GQ_RING_NST 3 /* rounds in flight per warp */

__device__ __forceinline__ void gq_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> __device__ __forceinline__ void gq_cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

/* One round's buffers for group size G and UNR quads per lane (16-byte multiples). */
template <int G, int UNR> struct gq_ring_geom {
    static constexpr int QPR = 32 * UNR;              /* quads per round */
    static constexpr int QPG = G / 8;
    static constexpr int SLOTS = QPR / QPG + 1;       /* most slots a round touches */
    static constexpr int CODES_B = QPR * 4;
    static constexpr int SM_B = (4 * SLOTS + 12 + 15) / 16 * 16 + 16;  /* + widening at both ends */
    static constexpr int COL_B = (2 * SLOTS + 14 + 15) / 16 * 16 + 16;
    static constexpr int STAGE_B = CODES_B + SM_B + COL_B;
    static constexpr int SMEM_B = GQ_ROW_WARPS * GQ_RING_NST * STAGE_B;
};

__device__ __forceinline__ void gq_cp_async16_s(uint32_t saddr, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(saddr), "l"(gmem) : "memory");
}
__device__ __forceinline__ void gq_cp_async16_s_if(bool p, uint32_t saddr, const void *gmem) {
    if (p) gq_cp_async16_s(saddr, gmem);
}

/* Batch 1: at least 10 CTAs per SM. Bytes in flight no longer cost registers, so v3's 16 CTAs at 32
 * registers (which spill here) are not needed; 10 CTAs (40 warps, 48 registers, no spills) measured
 * faster than 12 (40 registers, ~40 bytes spilled) at every batch-1 point of the quick table (H200,
 * 2026-12-03: 8192^2 S50 G16 layer 16.71 vs 19.91 us, dense W4 G128 17.28 vs 21.66; PERF.md "v8"). */
template <int B> struct gq_minb_ring { static constexpr int value = B == 1 ? 10 : 1; };
#define GQ_RING_UNR 4 /* quads per lane per round at every batch: the weights wait in shared memory, not in
                         registers; and 128 quads per round keeps each round's slot spans 16-byte steps apart */

/* One warp per row (longest first), as v3/v7. Round rd's slots start QPR / QPG * rd slots after round 0's,
 * a multiple of 16 bytes of both metadata arrays (QPR = 128, QPG <= 16), so each lane's three 16-byte
 * pieces (codes; scale|min and columns of the 16-byte-widened spans, where the lane is inside them)
 * move by a fixed stride per round, and the round's first slot sits at the same offset in its copy. */
template <int G, int B, bool DENSE>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, gq_minb_ring<B>::value) gq_gemv_ring_kernel(const gq_gemv_args a) {
    using RG = gq_ring_geom<G, GQ_RING_UNR>;
    constexpr int UNR = GQ_RING_UNR, QPR = RG::QPR, QPG = RG::QPG;
    constexpr int SSTR = 4 * (QPR / QPG), LSTR = 2 * (QPR / QPG); /* metadata bytes per round */
    static_assert(SSTR % 16 == 0 && LSTR % 16 == 0 && RG::CODES_B == 32 * 16, "ring geometry");
    extern __shared__ __align__(16) unsigned char gq_ring_smem[];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int i = blockIdx.x * GQ_ROW_WARPS + wid;
    if (i >= a.N) {
        gq_pdl_wait();
        gq_pdl_trigger();
        return;
    }
    int64_t lo, hi;
    const int r = gq_warp_row<DENSE>(a, i, lo, hi);
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
    unsigned char *ring = gq_ring_smem + wid * (GQ_RING_NST * RG::STAGE_B);
    if (hi <= lo) {
        gq_pdl_wait();
        gq_pdl_trigger();
    } else {
        const gq_qseg g = gq_qseg_make<G>(a, lo, hi, lo);
        const uint32_t nr = (g.n + QPR - 1) / QPR; /* rounds */
        const int nsl = (int)((g.r0 + QPR - 1) / QPG + 1); /* slots a round touches */
        /* round 0's spans; the others are these moved by rd strides */
        const uintptr_t sa = reinterpret_cast<uintptr_t>(g.sm), la = reinterpret_cast<uintptr_t>(g.col);
        const uintptr_t s16 = sa & ~(uintptr_t)15, l16 = la & ~(uintptr_t)15;
        const int nps = (int)((sa + 4 * nsl + 15 - s16) >> 4), npl = (int)((la + 2 * nsl + 15 - l16) >> 4);
        const char *pc = reinterpret_cast<const char *>(g.codes) + 16 * lane;
        const char *ps = reinterpret_cast<const char *>(s16) + 16 * lane;
        const char *pl = reinterpret_cast<const char *>(l16) + 16 * lane;
        /* which of the lane's pieces exist, as bits (kept in one register across the loop; 2: G8's second
         * scale|min piece, up to 34 of them) */
        const uint32_t pm = (lane < nps ? 1u : 0u) | (lane + 32 < nps ? 2u : 0u) | (lane < npl ? 4u : 0u);
        static_assert(RG::COL_B <= 32 * 16, "one column piece per lane");
        const uint32_t sring = (uint32_t)__cvta_generic_to_shared(ring) + 16 * lane;
        /* issue the copy of the next round into buffer buf, then advance the sources by one round */
        auto copy = [&](int buf) {
            const uint32_t d = sring + buf * RG::STAGE_B;
            gq_cp_async16_s(d, pc);
            gq_cp_async16_s_if(pm & 1u, d + RG::CODES_B, ps);
            if constexpr (RG::SM_B > 32 * 16) gq_cp_async16_s_if(pm & 2u, d + RG::CODES_B + 512, ps + 512);
            if constexpr (!DENSE) gq_cp_async16_s_if(pm & 4u, d + RG::CODES_B + RG::SM_B, pl);
            gq_cp_async_commit();
            pc += RG::CODES_B, ps += SSTR, pl += LSTR;
        };
#pragma unroll
        for (int s = 0; s < GQ_RING_NST - 1; s++) {
            if ((uint32_t)s < nr) copy(s);
            else gq_cp_async_commit(); /* empty group: the wait count below stays uniform */
        }
        gq_pdl_wait();
        gq_pdl_trigger();
        constexpr uint32_t SPR = 32 / QPG; /* slots per 32 quads */
        const uint32_t ls = (g.r0 + (uint32_t)lane) / QPG; /* the lane's first slot in a round */
        const int kq = (int)((g.r0 + (uint32_t)lane) % QPG) * 8;
        const int so = (int)((sa & 15) >> 2) + (int)ls, lso = (int)((la & 15) >> 1) + (int)ls;
        int cur = 0, nxt = GQ_RING_NST - 1; /* buffers of round rd and of round rd + NST - 1 */
        for (uint32_t rd = 0; rd < nr; rd++) {
            if (rd + GQ_RING_NST - 1 < nr) copy(nxt);
            else gq_cp_async_commit();
            gq_cp_async_wait<GQ_RING_NST - 1>(); /* this lane's pieces of round rd have landed ... */
            __syncwarp();                        /* ... and every lane's */
            const unsigned char *sb = ring + cur * RG::STAGE_B;
            const uint32_t *cs = reinterpret_cast<const uint32_t *>(sb) + lane;
            const uint32_t *ss = reinterpret_cast<const uint32_t *>(sb + RG::CODES_B) + so;
            const uint16_t *cl = reinterpret_cast<const uint16_t *>(sb + RG::CODES_B + RG::SM_B) + lso;
#pragma unroll
            for (int q = 0; q < UNR; q++) {
                const uint32_t j = QPR * rd + (uint32_t)lane + 32u * q;
                const uint32_t smv = ss[SPR * q]; /* unconditional: a select, not a branch around the load */
                const uint32_t smw = j < g.n ? smv : 0u;
                const int k0 = DENSE ? g.kd + (int)(j < g.n ? j : 0u) * 8 : (int)cl[SPR * q] * G + kq;
                gq_quad<B, false, true>(a, k0, cs[32 * q], smw, acc);
            }
            __syncwarp(); /* every lane is done with this buffer before a later round's copy refills it */
            cur = cur == GQ_RING_NST - 1 ? 0 : cur + 1;
            nxt = nxt == GQ_RING_NST - 1 ? 0 : nxt + 1;
        }
    }
    gq_warp_sum<B>(acc);
    gq_store_row<B>(a, r, lane, acc);
}

template <int G, int B, bool DENSE> static gq_status gq_ring_launch(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
    using RG = gq_ring_geom<G, GQ_RING_UNR>;
    static_assert(RG::SMEM_B <= 48 * 1024, "the ring fits the default dynamic shared memory (no opt-in)");
    const unsigned grid = (unsigned)((a.N + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_ring_kernel<G, B, DENSE>, dim3(grid), dim3(32 * GQ_ROW_WARPS), (size_t)RG::SMEM_B, st, a));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

#endif
