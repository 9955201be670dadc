/* gqs_stream.h — the GEMV kernels over the row stream (gqs_pack.h "v11 row stream", built from the device
 * format by gq_gemv_v11_setup, gqs_gemv_v11.cu): v11 (GQS and dense W4, batch 1-16), v7's row split, lanes,
 * quad order and arithmetic reading each row from one contiguous stream instead of three arrays; v12, v11
 * through a per-warp cp.async ring (batch 1); v13/v14 (batch 1), a persistent grid in which each warp copies
 * one contiguous range of the stream through a shared-memory ring (per-lane cp.async / bulk copies). CUDA
 * C++ only; launched by gq_gemv_launch_v11 / _v12 / _v13.
 *
 * Why (PERF.md "v11"): at 8192^2 S50 G16 layer a contiguous read of the matrix's bytes takes 8.55 us, v7's
 * loads alone (no arithmetic) 10.86 us and v7 13.21 us. v7 reads a round of 128 quads per warp with 12
 * loads per lane — 4 code words, 4 scale|min words, 4 columns, from three arrays at three rates, the
 * narrow ones (64 and 32 bytes per warp instruction) partly wasting their sectors. Here a full round is one
 * 896-byte piece of the row's stream read with three loads per lane: its 4 code words as one 16-byte load
 * (512 bytes per warp), its 4 scale|min words as one 16-byte load and its 4 columns as one 8-byte load
 * (lanes of a group share an entry: a broadcast). A row ends with 0-3 short rounds of 32 quads (one
 * 4-byte code load per lane), and every row is padded to whole blocks of 32 quads with empty quads
 * (scale|min 0), so no load needs a bound and no lane reads another row.
 * Lane l visits the row's quads l + 32 i in v7's order and dequantizes with gq_quad LEAN, so every result
 * is bit-identical to v7 and v3 (an empty quad adds exactly +0; tests/test_cuda_gemv.c checks).
 * Must not: read x before gq_pdl_wait() (weights and the row table may be read before it), nor read x
 * with ld.global.nc (__ldg): x is what the previous kernel writes, and ptxas moved the first v11 kernel's
 * nc x loads above the wait (SASS: LDG.E.128.CONSTANT before ACQBULK; the decode test's W4 logits came out
 * wrong). x is read with coherent loads (gq_quad XC). Nor allocate or synchronise.
 */
#ifndef GQ_CUDA_GQS_STREAM_H
#define GQ_CUDA_GQS_STREAM_H

#include "gqs_ring.h" /* cp.async helpers */
#include "prefetch.cuh"  /* gq_prefetch_l2 (v15) */
#include "gqs_flat.h"    /* gq_flat_kc: x chunks in shared memory */
#include "tma.cuh"       /* gq_smem_addr, the bulk copies and mbarriers */

/* Where a round's bytes are: at p + off (gq_at_lin: a row's stream in global or shared memory), or at
 * ring + (o + off) mod RB (gq_at_ring, v13: a warp's byte ring, RB a power of two; a 16-byte field at a
 * 16-byte offset never straddles its end). */
struct gq_at_lin {
    const char *p;
    __device__ __forceinline__ const char *operator()(int off) const { return p + off; }
};
template <int RB> struct gq_at_ring {
    const char *ring;
    int o;
    __device__ __forceinline__ const char *operator()(int off) const { return ring + ((o + off) & (RB - 1)); }
};

/* One full round (128 quads) of the lane: code words cw, scale|min words sw and columns cl of its quads
 * i = 0..3 (quad l + 32 i of the round). at: where the round's bytes are, in global memory (streaming
 * loads) or, SMEM (v12, v13), in shared memory. */
template <int G, bool DENSE, bool SMEM, class AT>
__device__ __forceinline__ void gq_stream_full_load_at(AT at, int lane, uint32_t (&cw)[4], uint32_t (&sw)[4],
                                                       uint32_t (&cl)[4]) {
    constexpr int QPG = G / 8, SPR = GQ_STREAM_SPR(G);
    const int e = lane / QPG;
    const uint4 c = SMEM ? *reinterpret_cast<const uint4 *>(at(16 * lane)) : gq_ld_stream_v4(at(16 * lane));
    const uint4 s = SMEM ? *reinterpret_cast<const uint4 *>(at(512 + 16 * e)) : gq_ld_stream_v4(at(512 + 16 * e));
    cw[0] = c.x, cw[1] = c.y, cw[2] = c.z, cw[3] = c.w;
    sw[0] = s.x, sw[1] = s.y, sw[2] = s.z, sw[3] = s.w;
    if constexpr (!DENSE) {
        const char *pl = at(512 + 16 * SPR + 8 * e);
        const uint2 l = SMEM ? *reinterpret_cast<const uint2 *>(pl) : gq_ld_stream_v2(pl);
        cl[0] = l.x & 0xFFFFu, cl[1] = l.x >> 16, cl[2] = l.y & 0xFFFFu, cl[3] = l.y >> 16;
    } else {
        cl[0] = cl[1] = cl[2] = cl[3] = 0;
    }
}
template <int G, bool DENSE, bool SMEM = false>
__device__ __forceinline__ void gq_stream_full_load(const char *p, int lane, uint32_t (&cw)[4], uint32_t (&sw)[4],
                                                    uint32_t (&cl)[4]) {
    gq_stream_full_load_at<G, DENSE, SMEM>(gq_at_lin{p}, lane, cw, sw, cl);
}
/* One short round (32 quads): the lane's quad l. */
template <int G, bool DENSE, bool SMEM, class AT>
__device__ __forceinline__ void gq_stream_short_load_at(AT at, int lane, uint32_t &cw, uint32_t &sw, uint32_t &cl) {
    constexpr int QPG = G / 8, SPR = GQ_STREAM_SPR(G);
    const int e = lane / QPG;
    if constexpr (SMEM) {
        cw = *reinterpret_cast<const uint32_t *>(at(4 * lane));
        sw = *reinterpret_cast<const uint32_t *>(at(128 + 4 * e));
        cl = DENSE ? 0u : *reinterpret_cast<const uint16_t *>(at(128 + 4 * SPR + 2 * e));
    } else {
        cw = gq_ld_stream_u32(at(4 * lane));
        sw = gq_ld_stream_u32(at(128 + 4 * e));
        cl = DENSE ? 0u : gq_ld_stream_u16(at(128 + 4 * SPR + 2 * e));
    }
}
template <int G, bool DENSE, bool SMEM = false>
__device__ __forceinline__ void gq_stream_short_load(const char *p, int lane, uint32_t &cw, uint32_t &sw, uint32_t &cl) {
    gq_stream_short_load_at<G, DENSE, SMEM>(gq_at_lin{p}, lane, cw, sw, cl);
}
/* The lane's quads of a full round (j: its quad i = 0's index in the row) or of a short one into acc. Dense:
 * quad j is column 8 j, and the padding quads (j >= n, the row's quads) read column 0 (valid, scale 0). */
template <int G, int B, bool DENSE, bool XS = false>
__device__ __forceinline__ void gq_stream_full_use(const gq_gemv_args &a, const uint32_t (&cw)[4], const uint32_t (&sw)[4],
                                                   const uint32_t (&cl)[4], uint32_t j, uint32_t n, int kq, float (&acc)[B],
                                                   const uint4 *xs = nullptr, int kc = 0) {
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const uint32_t jq = j + 32u * q;
        const int k0 = DENSE ? 8 * (int)(jq < n ? jq : 0u) : (int)cl[q] * G + kq;
        gq_quad<B, XS, true, !XS>(a, k0, cw[q], sw[q], acc, xs, kc);
    }
}
template <int G, int B, bool DENSE, bool XS = false>
__device__ __forceinline__ void gq_stream_short_use(const gq_gemv_args &a, uint32_t cw, uint32_t sw, uint32_t cl, uint32_t j,
                                                    uint32_t n, int kq, float (&acc)[B], const uint4 *xs = nullptr, int kc = 0) {
    const int k0 = DENSE ? 8 * (int)(j < n ? j : 0u) : (int)cl * G + kq;
    gq_quad<B, XS, true, !XS>(a, k0, cw, sw, acc, xs, kc);
}

/* Round t of a row (full for t < nf, else short round t - nf) read from shared memory through at (v13, v14,
 * v16), into acc with v11's lanes and arithmetic; COPY_ONLY (the bench's ring ceilings): one word of it
 * instead, enough to keep the wait for its bytes. */
template <int G, bool DENSE, bool XS, bool COPY_ONLY, class AT>
__device__ __forceinline__ void gq_stream_round_smem(const gq_gemv_args &a, AT at, int lane, int t, int nf, uint32_t n, int kq,
                                                     float (&acc)[1], const uint4 *xs, int kc) {
    if constexpr (COPY_ONLY) {
        acc[0] += __int_as_float(*reinterpret_cast<const int *>(at(16 * lane)) & 0x00FFFFFF);
    } else if (t < nf) {
        uint32_t cw[4], sw[4], cl[4];
        gq_stream_full_load_at<G, DENSE, true>(at, lane, cw, sw, cl);
        gq_stream_full_use<G, 1, DENSE, XS>(a, cw, sw, cl, (uint32_t)(lane + 128 * t), n, kq, acc, xs, kc);
    } else {
        uint32_t cw, sw, cl;
        gq_stream_short_load_at<G, DENSE, true>(at, lane, cw, sw, cl);
        gq_stream_short_use<G, 1, DENSE, XS>(a, cw, sw, cl, (uint32_t)(lane + 128 * nf + 32 * (t - nf)), n, kq, acc, xs, kc);
    }
}

/* x [K] (batch 1) into xs, swizzled (gq_xswz), by the CTA's threads (v14, v16); after the PDL wait and with
 * coherent loads (never __ldg: PERF.md "v12 measured"). The caller synchronises the CTA. */
__device__ __forceinline__ void gq_stage_x_b1(uint4 *xs, const gq_gemv_args &a) {
    for (int i = threadIdx.x; i < a.K / 8; i += blockDim.x) xs[gq_xswz(i)] = gq_ld_coherent_v4(reinterpret_cast<const uint4 *>(a.x) + i);
}

/* CTAs per SM the register budget is set for (ptxas -v): at batch 1, 16 (32 registers, 64 warps per SM,
 * as v7) except at G8, whose four columns per lane spill 116 bytes there: 12 (40 registers). At batch 8,
 * 4 (128 registers: 4 CTAs instead of 3, no spill); other batches as the compiler likes (no spill). */
template <int G, int B> struct gq_minb_stream {
    static constexpr int value = B == 1 ? (G == 8 ? 12 : 16) : B == 8 ? 4 : 1;
};

/* Warp i computes row row_order[i] (dense: row i), as v7.
 * PF (v15): lane 0 also prefetches the row's next a.pf rounds into L2 (one bulk prefetch per round, the
 * round a.pf ahead; at the first round all of them), so a warp has 1 + a.pf rounds in flight while its
 * registers hold one — bytes in flight without registers or shared memory (PERF.md "v15"). A hint: the
 * results are v11's, bit for bit.
 * R (v17, batch 1, R = 2 or 4): R warps of the CTA share each row: warp k of a row takes its full rounds
 * k, k + R, ... and the short ones whose round index (nf + s) is k mod R, with v11's lanes and arithmetic;
 * the R partial sums meet in shared memory and the row's warp 0 adds them in warp order (deterministic;
 * not v3's bits: the lane sums are split R ways). Why (PERF.md "v17"): v11 gives a matrix of N rows N warps,
 * and a warp has one round of loads in flight, so a matrix with fewer rows than the GPU has warp slots
 * (4096 rows against 8448 on an H200) keeps as few bytes in flight as it has rows: the o and down
 * projections of a 7B decode step ran at 26-39% of copy, 8192^2 at 55%. R = 1 is v11 itself. */
template <int G, int B, bool DENSE, bool PF = false, int R = 1>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, (gq_minb_stream<G, B>::value)) gq_gemv_stream_kernel(const gq_gemv_args a) {
    static_assert(R == 1 || (B == 1 && !PF && GQ_ROW_WARPS % R == 0), "v17 splits rows at batch 1, without prefetch");
    constexpr int FULL = GQ_STREAM_FULL(G, DENSE), SHORT = GQ_STREAM_SHORT(G, DENSE);
    const int lane = threadIdx.x & 31;
    const int k = R == 1 ? 0 : (threadIdx.x >> 5) % R; /* this warp's part of its row */
    const int i = blockIdx.x * (GQ_ROW_WARPS / R) + (threadIdx.x >> 5) / R;
    if (R == 1 && i >= a.N) return;
    __shared__ float part[R == 1 ? 1 : GQ_ROW_WARPS]; /* v17: the partial sums of parts 1..R-1 */
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
    int r = 0;
    if (R == 1 || i < a.N) { /* R > 1: a warp past the last row still meets the CTA's barrier */
        r = (!DENSE && a.row_order) ? a.row_order[i] : i;
        const int2 sr = a.srow[r];
        const char *p = reinterpret_cast<const char *>(a.stream) + (size_t)sr.x * 16;
        const int nf = sr.y >> 2, ns = sr.y & 3;
        const char *row_end = p + ((nf * FULL + ns * SHORT + 15) & ~15);
        const auto prefetch = [&](const char *q0, int rounds) { /* [q0, q0 + rounds FULL) within the row */
            const char *q1 = q0 + rounds * FULL < row_end ? q0 + rounds * FULL : row_end;
            if (lane == 0 && q1 > q0) gq_prefetch_l2(q0, (uint32_t)(q1 - q0));
        };
        const int kq = (lane % (G / 8)) * 8;
        const uint32_t n = (uint32_t)(a.K / 8); /* dense: quads per row; quad j is column 8 j */
        uint32_t j = (uint32_t)(lane + 128 * k);
        /* R > 1: the loop runs on j alone (jend: j past the last full round), t is dead: one register less */
        const uint32_t jend = (uint32_t)(lane + 128 * nf);
        int t = k;
        p += (size_t)k * FULL;
        for (; R == 1 ? t < nf : j < jend; t += R, p += R * FULL, j += 128 * R) {
            uint32_t cw[4], sw[4], cl[4];
            gq_stream_full_load<G, DENSE>(p, lane, cw, sw, cl);
            if constexpr (PF) {
                if (t == 0) prefetch(p + FULL, a.pf);
                else prefetch(p + a.pf * FULL, 1);
            }
            if (R == 1 ? t == 0 : j < 128u * R) { /* the first round's weight loads are in flight before the wait */
                gq_pdl_wait();
                gq_pdl_trigger();
            }
            gq_stream_full_use<G, B, DENSE>(a, cw, sw, cl, j, n, kq, acc);
        }
        /* the part's first short round: the first s with (nf + s) % R == k (R = 1: 0); k from the thread index
         * again: kept across the full rounds it costs v17 a spill at 32 registers */
        const int s0 = R == 1 ? 0 : ((int)(threadIdx.x >> 5) % R - nf % R + R) % R;
        if constexpr (R > 1) { /* R = 1: p and j are there already */
            p += (ptrdiff_t)s0 * SHORT - (ptrdiff_t)((j - jend) >> 7) * FULL; /* j: the part's first full round past nf */
            j = (uint32_t)(lane + 128 * nf + 32 * s0);
        }
        for (t = s0; t < ns; t += R, p += R * SHORT, j += 32 * R) {
            uint32_t cw, sw, cl;
            gq_stream_short_load<G, DENSE>(p, lane, cw, sw, cl);
            if (R == 1 ? t == 0 && nf == 0 : t < R) { /* R > 1: a second wait returns at once */
                gq_pdl_wait();
                gq_pdl_trigger();
            }
            gq_stream_short_use<G, B, DENSE>(a, cw, sw, cl, j, n, kq, acc);
        }
        if (R > 1 || sr.y == 0) { /* an empty row, or a part with no round: y is written after the wait too */
            gq_pdl_wait();
            gq_pdl_trigger();
        }
        gq_warp_sum<B>(acc);
    }
    if constexpr (R > 1) { /* k, i and r again, for the same reason (r: no spill at G8-G32, 16 bytes at G64/G128) */
        const int w = threadIdx.x >> 5, kk = w % R;
        if (kk > 0 && lane == 0) part[w] = acc[0];
        __syncthreads();
        const int i2 = blockIdx.x * (GQ_ROW_WARPS / R) + w / R;
        if (kk > 0 || i2 >= a.N) return;
#pragma unroll
        for (int q = 1; q < R; q++) acc[0] += part[w + q];
        r = (!DENSE && a.row_order) ? a.row_order[i2] : i2;
    }
    gq_store_row<B>(a, r, lane, acc);
}

/* ---- v12: v11 with each warp's row stream in flight through a shared-memory ring (cp.async) ------------
 * Why (PERF.md "v11 measured"): v11's loads alone (walk_stream) take as long as v7's (10.69 vs 10.76 us at
 * 8192^2 S50 G16 layer) although a contiguous read of the bytes takes 8.54 us: not the loads' shape but
 * the bytes in flight set the time. A register load holds its registers until the data arrives, so a
 * warp has one round in flight: 64 warps x 896 bytes = 57 KB per SM, against ~128 KB for the contiguous
 * read. cp.async holds no registers: here each warp copies its row's stream in chunks of one full round
 * (the chunk after the full rounds holds all the short rounds: 3 x SHORT < FULL) into its own ring of
 * GQ_SRING_D slots, D chunks ahead of the one it computes (172 KB of rings per SM at G16, 64 warps), and
 * reads each round from shared memory with v11's three loads per lane. One copy instruction per 16-byte
 * piece (two per lane per round at G16) and two __syncwarp per round are the whole cost (v8 spent ~13
 * instructions per quad on its three-array ring). Lanes, quad order and arithmetic are v11's: results are
 * bit-identical to v11, v7 and v3. Batch 1 only (the launcher runs v11 above). */
#define GQ_SRING_D 3

template <int G, bool DENSE> struct gq_sring {
    static constexpr int FULL = GQ_STREAM_FULL(G, DENSE), SHORT = GQ_STREAM_SHORT(G, DENSE);
    static constexpr int WARP_B = GQ_SRING_D * FULL;                /* one warp's ring */
    static constexpr int SMEM_B = GQ_ROW_WARPS * WARP_B;            /* dynamic shared memory per CTA */
};

/* 16-byte pieces [0, n16) of a chunk (n16 <= FULL / 16) at src -> the slot at dst (shared address), lanes
 * striding by 32: a fixed number of predicated copies (a loop bound of n16 became a 4x-unrolled loop with
 * spills). */
template <int FULL> __device__ __forceinline__ void gq_sring_copy(uint32_t dst, const char *src, int n16, int lane) {
    constexpr int NP = (FULL / 16 + 31) / 32;
#pragma unroll
    for (int u = 0; u < NP; u++) {
        const int k = lane + 32 * u;
        if (k < n16) gq_cp_async16_s(dst + 16 * k, src + 16 * k);
    }
}

template <int G, bool DENSE>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, 16) gq_gemv_sring_kernel(const gq_gemv_args a) {
    using RG = gq_sring<G, DENSE>;
    constexpr int D = GQ_SRING_D, FULL = RG::FULL, SHORT = RG::SHORT;
    extern __shared__ uint4 gq_srs[];
    const int lane = threadIdx.x & 31, wi = threadIdx.x >> 5;
    const int i = blockIdx.x * GQ_ROW_WARPS + wi;
    if (i >= a.N) return; /* no CTA-wide barrier below */
    char *ring = reinterpret_cast<char *>(gq_srs) + wi * RG::WARP_B;
    const uint32_t sring = gq_smem_addr(ring);
    const int r = (!DENSE && a.row_order) ? a.row_order[i] : i;
    const int2 sr = a.srow[r];
    const char *g = reinterpret_cast<const char *>(a.stream) + (size_t)sr.x * 16;
    const int nf = sr.y >> 2, ns = sr.y & 3, nch = nf + (ns > 0);
    const int n16 = (nf * FULL + ns * SHORT + 15) / 16; /* the row's stream, 16-byte pieces */
    const auto pieces = [&](int c) { /* of chunk c: FULL / 16, less for the last */
        const int m = n16 - c * (FULL / 16);
        return m < FULL / 16 ? m : FULL / 16;
    };
#pragma unroll
    for (int c = 0; c < D; c++) { /* weights only: before the wait */
        if (c < nch) gq_sring_copy<FULL>(sring + c * FULL, g + c * FULL, pieces(c), lane);
        gq_cp_async_commit();
    }
    gq_pdl_wait();
    gq_pdl_trigger();
    const int kq = (lane % (G / 8)) * 8;
    const uint32_t n = (uint32_t)(a.K / 8);
    float acc[1] = {0.f};
    for (int c = 0; c < nch; c++) {
        gq_cp_async_wait<D - 1>(); /* this lane's pieces of chunk c have landed ... */
        __syncwarp();              /* ... and every lane's */
        const char *p = ring + (c % D) * FULL;
        if (c < nf) {
            uint32_t cw[4], sw[4], cl[4];
            gq_stream_full_load<G, DENSE, true>(p, lane, cw, sw, cl);
            gq_stream_full_use<G, 1, DENSE>(a, cw, sw, cl, (uint32_t)(lane + 128 * c), n, kq, acc);
        } else {
            for (int t = 0; t < ns; t++) {
                uint32_t cw, sw, cl;
                gq_stream_short_load<G, DENSE, true>(p + t * SHORT, lane, cw, sw, cl);
                gq_stream_short_use<G, 1, DENSE>(a, cw, sw, cl, (uint32_t)(lane + 128 * nf + 32 * t), n, kq, acc);
            }
        }
        __syncwarp(); /* every lane has read the slot before it is refilled */
        const int cn = c + D;
        if (cn < nch) gq_sring_copy<FULL>(sring + (c % D) * FULL, g + cn * FULL, pieces(cn), lane);
        gq_cp_async_commit(); /* possibly empty: the wait count stays uniform */
    }
    gq_warp_sum<1>(acc);
    gq_store_row<1>(a, r, lane, acc);
}

/* ---- v13 / v14: a persistent grid, one contiguous range of the stream per warp, through a byte ring -------
 * Why (PERF.md "v12 measured"): v12's ring held 3 rounds per warp and restarted at every row, so with ~4
 * rounds per row its prologue was most of the row. Here the grid is persistent (#SMs x the CTAs that fit)
 * and warp w owns the tokens [wstart[w], wstart[w+1]) of the stream in order (gqs_pack.h "v13 split": every
 * round of every row; mode 1 equal bytes with rows cut between warps, mode 0 whole rows in equal counts),
 * one contiguous byte range that the warp copies through a ring of RB bytes ahead of the round it computes,
 * across row boundaries. Rounds are read from the ring with v11's loads (gq_at_ring wraps the offsets) and
 * v11's lanes, quad order and arithmetic, so whole rows are bit-identical to v11 and v3. A cut row's parts
 * meet through records and an arrival counter (gq_fixup_arrive); the last to arrive sums them in warp order
 * (deterministic) and writes y: no warp ever waits for another. Batch 1 only.
 * Measured slower than v11 (~2x at 8192^2 S50 G16: PERF.md "v13 measured", "v14 ... measured"): the rings
 * leave 16-28 warps per SM, too few to hide the arithmetic's per-warp chain. Kept as kinds for the record.
 *
 * The ring's copy engines (RING): each keeps one warp's range [lo, hi) of the stream flowing into RB bytes
 * of shared memory; byte o of the stream is read at ring + (o - base()) mod RB. start: the first copies
 * (weights only: before the PDL wait); ready(o, sz): the round [o, o + sz) has landed for every lane (and
 * copies freed by earlier rounds are refilled); done_round: after the round's reads; finish: nothing in
 * flight. Must not: exit with copies in flight (the shared memory may go to the next CTA), read x before
 * gq_pdl_wait(). */

/* v13: per-lane cp.async (LDGSTS) of 512-byte pieces, one commit group each, L pieces ahead. Before reading
 * a round that ends in piece q the warp has committed exactly q + L + 1 pieces, so cp.async.wait_group L
 * means pieces <= q have landed; the ring holds the round's pieces (<= MAXP) and the L ahead: MAXP + L = NS.
 * At RB = 8 KB, G16: 13 pieces (6.5 KB) in flight per warp. */
template <int RB, int FULL> struct gq_ring_ldgsts {
    static constexpr int NS = RB / 512;                   /* pieces in the ring */
    static constexpr int MAXP = (FULL + 496 + 511) / 512; /* pieces a round (16-byte aligned) can touch */
    static constexpr int L = NS - MAXP;                   /* pieces in flight ahead of the round read */
    static constexpr int RING_B = RB, SMEM_WARP = RB;
    static_assert((RB & (RB - 1)) == 0 && L >= 2, "v13 ring: a power of two holding a round and 2 pieces more");
    uint32_t sring;
    const char *gs;
    int lo, hi, np, lane;
    __device__ __forceinline__ void copy_next() {
        const int o = np * 512 + 16 * lane;
        gq_cp_async16_s_if(o >= lo && o < hi, sring + (np & (NS - 1)) * 512 + 16 * lane, gs + o);
        gq_cp_async_commit(); /* possibly empty: the group count stays uniform */
        np++;
    }
    __device__ __forceinline__ void start(char *smem, const char *g, int b0, int b1, int ln) {
        sring = gq_smem_addr(smem), gs = g, lane = ln;
        lo = b0 & ~15, hi = (b1 + 15) & ~15, np = b0 >> 9;
#pragma unroll
        for (int u = 0; u < L; u++) copy_next();
    }
    __device__ __forceinline__ int base() const { return 0; }
    __device__ __forceinline__ void ready(int o, int sz) {
        const int q = (o + sz - 1) >> 9;
        while (np <= q + L) copy_next();
        gq_cp_async_wait<L>(); /* this lane's pieces up to q have landed ... */
        __syncwarp();          /* ... and every lane's */
    }
    __device__ __forceinline__ void done_round() { __syncwarp(); } /* read before its pieces are refilled */
    __device__ __forceinline__ void finish() { gq_cp_async_wait<0>(); }
};

/* v14: bulk copies (cp.async.bulk, the TMA path) of SLOT = RB / NSL bytes, one instruction each from lane 0,
 * each completed on its slot's mbarrier. Chunk c of the range is bytes [base + c SLOT, base + (c + 1) SLOT)
 * (base: lo rounded down to SLOT) clipped to [lo, hi), in slot c mod NSL; its fill parity is (c / NSL) & 1.
 * A slot is refilled (chunk c + NSL) once every round reading chunk c is done: when the round about to be
 * read starts past it. Measured as a copy-only ring (walk_bulk_r8k_s4, bench): 9.97 us at 8192^2 S50 G16
 * where the per-lane cp.async ring took 15.68 (PERF.md "v13 measured"). */
template <int RB, int NSL, int FULL> struct gq_ring_bulk {
    static constexpr int SLOT = RB / NSL;
    static constexpr int RING_B = RB, SMEM_WARP = RB + 8 * NSL; /* the ring, then NSL mbarriers */
    static_assert((SLOT & (SLOT - 1)) == 0 && SLOT >= 512 && (FULL + SLOT - 1) / SLOT + 1 <= NSL - 1,
                  "v14 ring: power-of-two slots, a round's chunks and one more in the ring");
    char *ring;
    uint64_t *bar;
    const char *gs;
    int lo, hi, b0, nch, rdy, fill, lane;
    __device__ __forceinline__ void issue(int c) { /* lane 0 */
        const int a0 = b0 + c * SLOT, s0 = a0 > lo ? a0 : lo, s1 = a0 + SLOT < hi ? a0 + SLOT : hi;
        gq_mbar_expect_tx(&bar[c % NSL], (uint32_t)(s1 - s0));
        gq_bulk_g2s(ring + (c % NSL) * SLOT + (s0 - a0), gs + s0, (uint32_t)(s1 - s0), &bar[c % NSL]);
    }
    __device__ __forceinline__ void start(char *smem, const char *g, int bb, int be, int ln) {
        ring = smem, bar = reinterpret_cast<uint64_t *>(smem + RB), gs = g, lane = ln;
        lo = bb & ~15, hi = (be + 15) & ~15, b0 = lo & ~(SLOT - 1);
        nch = (hi - b0 + SLOT - 1) / SLOT, rdy = -1, fill = nch < NSL ? nch : NSL;
        if (lane == 0) {
            for (int c = 0; c < NSL; c++) gq_mbar_init(&bar[c], 1);
            gq_mbar_init_fence();
            for (int c = 0; c < fill; c++) issue(c);
        }
        __syncwarp();
    }
    __device__ __forceinline__ int base() const { return b0; }
    __device__ __forceinline__ void ready(int o, int sz) {
        const int c0 = (o - b0) / SLOT, cl = (o + sz - 1 - b0) / SLOT;
        const int want = c0 + NSL < nch ? c0 + NSL : nch;
        if (fill < want) {            /* chunks < c0 are read: their slots take chunks fill .. want - 1 */
            gq_fence_proxy_async(); /* this lane's reads of them before the async-proxy writes ... */
            __syncwarp();           /* ... and every lane's */
            if (lane == 0)
                for (int c = fill; c < want; c++) issue(c);
            fill = want;
        }
        while (rdy < cl) {
            rdy++;
            gq_mbar_wait(&bar[rdy % NSL], (uint32_t)(rdy / NSL) & 1u);
        }
    }
    __device__ __forceinline__ void done_round() {}
    __device__ __forceinline__ void finish() {
        while (rdy < fill - 1) { /* every chunk issued has landed before the warp leaves */
            rdy++;
            gq_mbar_wait(&bar[rdy % NSL], (uint32_t)(rdy / NSL) & 1u);
        }
    }
};

template <int G, bool DENSE, int RB> using gq_v13_ring = gq_ring_ldgsts<RB, GQ_STREAM_FULL(G, DENSE)>;
template <int G, bool DENSE, int RB> using gq_v14_ring = gq_ring_bulk<RB, 4, GQ_STREAM_FULL(G, DENSE)>;

/* A cut row's part: publish it; the last part to arrive sums every part (record 2 f + 1 of the row's first
 * warp f, then record 2 j of each later warp j whose non-empty range starts inside the row) and writes y.
 * Called once the warp's copies have all landed: the fence in gq_fixup_arrive would otherwise wait for the
 * ring's copies in flight (a warp's first part is held in a register until its range is done). */
__device__ __forceinline__ void gq_skring_part(const gq_gemv_args &a, int w, int r, bool first, int lane,
                                               const float (&acc)[1]) {
    const int2 f = a.sfix[r];
    if (!gq_fixup_arrive<1>(a, a.rec + (first ? 2 * w + 1 : 2 * w), r, f.y, lane, acc)) return;
    float v[1] = {0.f};
    if (lane == 0) {
        v[0] = __ldcg(a.rec + 2 * f.x + 1);
        for (int j = f.x + 1; j < a.W; j++) {
            const int4 sj = a.wstart[j], sn = a.wstart[j + 1];
            if (sj.x != r || sj.y == 0) break;
            if (sn.x != sj.x || sn.y != sj.y) v[0] += __ldcg(a.rec + 2 * j);
        }
        a.cnt[r] = 0; /* for the next, stream-ordered launch */
    }
    gq_store_row<1>(a, r, lane, v);
}

/* Shared memory of a v13/v14 CTA: x (XS: the batch-1 x, swizzled 16-byte chunks, gq_flat_kc(K) of them), then
 * each warp's ring. */
template <class RING, bool XS> __host__ __device__ inline size_t gq_skring_smem(int K) {
    return (XS ? (size_t)gq_flat_kc(K) * 16 : 0) + (size_t)GQ_ROW_WARPS * RING::SMEM_WARP;
}

/* COPY_ONLY: the ring without the arithmetic (bench). XS: x staged once per CTA in shared memory (v14): the
 * gather is then a 16-byte LDS instead of an L1 load that misses beside the rings (v13: 57% hits). */
template <int G, bool DENSE, class RING, bool COPY_ONLY = false, bool XS = false>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS) gq_gemv_skring_kernel(const gq_gemv_args a) {
    constexpr int FULL = GQ_STREAM_FULL(G, DENSE), SHORT = GQ_STREAM_SHORT(G, DENSE);
    constexpr int RB = RING::RING_B;
    extern __shared__ uint4 gq_sks[];
    const int lane = threadIdx.x & 31, wi = threadIdx.x >> 5;
    const int w = blockIdx.x * GQ_ROW_WARPS + wi;
    const int kc = XS ? gq_flat_kc(a.K) : 0;
    const int4 s = w < a.W ? a.wstart[w] : make_int4(0, 0, 0, 0), e = w < a.W ? a.wstart[w + 1] : s;
    const bool active = s.x != e.x || s.y != e.y; /* a non-empty range */
    if (!XS && !active) return;                    /* XS: every warp reaches the barrier below */
    char *ring = reinterpret_cast<char *>(gq_sks) + kc * 16 + wi * RING::SMEM_WARP;
    RING cp;
    if (active) cp.start(ring, reinterpret_cast<const char *>(a.stream), s.z, e.z, lane); /* weights only: before the wait */
    int r = s.x, t = s.y, wbase = r;
    int2 win = active && r + lane < a.N ? a.srow[r + lane] : make_int2(0, 0); /* rows wbase.. of the range, one per lane */
    gq_pdl_wait();
    gq_pdl_trigger();
    if constexpr (XS) {
        gq_stage_x_b1(gq_sks, a);
        __syncthreads();
        if (!active) return;
    }
    const int kq = (lane % (G / 8)) * 8;
    const uint32_t n = (uint32_t)(a.K / 8);
    int p0r = -1, p1r = -1;
    bool p0first = false;
    float p0[1] = {0.f}, p1[1] = {0.f};
    while (r < e.x || (r == e.x && t < e.y)) {
        if (r - wbase >= 32) {
            wbase = r;
            win = r + lane < a.N ? a.srow[r + lane] : make_int2(0, 0);
        }
        const int off = 16 * __shfl_sync(0xFFFFFFFFu, win.x, r - wbase), nb = __shfl_sync(0xFFFFFFFFu, win.y, r - wbase);
        const int nf = nb >> 2, nr = nf + (nb & 3);
        const int ts = t, te = r == e.x ? e.y : nr;
        float acc[1] = {0.f};
        for (; t < te; t++) {
            const bool full = t < nf;
            const int o = off + (full ? t * FULL : nf * FULL + (t - nf) * SHORT);
            cp.ready(o, full ? FULL : SHORT);
            gq_stream_round_smem<G, DENSE, XS, COPY_ONLY>(a, gq_at_ring<RB>{ring, o - cp.base()}, lane, t, nf, n, kq, acc, gq_sks, kc);
            cp.done_round();
        }
        gq_warp_sum<1>(acc);
        if (ts == 0 && te == nr) gq_store_row<1>(a, r, lane, acc); /* whole (an empty row: 0) */
        else if (p0r < 0) p0r = r, p0first = ts == 0, p0[0] = acc[0]; /* cut parts: at most the range's first */
        else p1r = r, p1[0] = acc[0];                                  /* and last row */
        r++, t = 0;
    }
    cp.finish();
    if (p0r >= 0) gq_skring_part(a, w, p0r, p0first, lane, p0);
    if (p1r >= 0) gq_skring_part(a, w, p1r, true, lane, p1);
}

#endif
