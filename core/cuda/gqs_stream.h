/* gqs_stream.h — the v11 GEMV kernel (GQS and dense W4, batch 1-16): v7's row split, lanes, quad order and
 * arithmetic, reading each row from one contiguous stream (gqs_pack.h "v11 row stream", built from the
 * device format by gq_gemv_v11_setup, gqs_gemv_v11.cu) instead of three arrays. CUDA C++ only; launched by
 * gq_gemv_launch_v11 for GQ_GEMV_ROW_V11 and GQ_GEMV_DENSE_W4_V11.
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
 * Must not: read x before gq_pdl_wait() (weights and the row table may be read before it), allocate or
 * synchronise.
 */
#ifndef GQ_CUDA_GQS_STREAM_H
#define GQ_CUDA_GQS_STREAM_H

#include "gqs_dev.h"

/* One full round (128 quads) of the lane: code words cw, scale|min words sw and columns cl of its quads
 * i = 0..3 (quad l + 32 i of the round). p: the round's first byte. */
template <int G, bool DENSE>
__device__ __forceinline__ void gq_stream_full_load(const char *p, int lane, uint32_t (&cw)[4], uint32_t (&sw)[4],
                                                    uint32_t (&cl)[4]) {
    constexpr int QPG = G / 8, SPR = GQ_STREAM_SPR(G);
    const int e = lane / QPG;
    const uint4 c = gq_ld_stream_v4(p + 16 * lane);
    const uint4 s = gq_ld_stream_v4(p + 512 + 16 * e);
    cw[0] = c.x, cw[1] = c.y, cw[2] = c.z, cw[3] = c.w;
    sw[0] = s.x, sw[1] = s.y, sw[2] = s.z, sw[3] = s.w;
    if constexpr (!DENSE) {
        const uint2 l = gq_ld_stream_v2(p + 512 + 16 * SPR + 8 * e);
        cl[0] = l.x & 0xFFFFu, cl[1] = l.x >> 16, cl[2] = l.y & 0xFFFFu, cl[3] = l.y >> 16;
    } else {
        cl[0] = cl[1] = cl[2] = cl[3] = 0;
    }
}
/* One short round (32 quads): the lane's quad l. */
template <int G, bool DENSE>
__device__ __forceinline__ void gq_stream_short_load(const char *p, int lane, uint32_t &cw, uint32_t &sw, uint32_t &cl) {
    constexpr int QPG = G / 8, SPR = GQ_STREAM_SPR(G);
    const int e = lane / QPG;
    cw = gq_ld_stream_u32(p + 4 * lane);
    sw = gq_ld_stream_u32(p + 128 + 4 * e);
    cl = DENSE ? 0u : gq_ld_stream_u16(p + 128 + 4 * SPR + 2 * e);
}

/* CTAs per SM the register budget is set for (ptxas -v): at batch 1, 16 (32 registers, 64 warps per SM,
 * as v7) except at G8, whose four columns per lane spill 116 bytes there: 12 (40 registers). At batch 8,
 * 4 (128 registers: 4 CTAs instead of 3, no spill); other batches as the compiler likes (no spill). */
template <int G, int B> struct gq_minb_stream {
    static constexpr int value = B == 1 ? (G == 8 ? 12 : 16) : B == 8 ? 4 : 1;
};

/* Warp i computes row row_order[i] (dense: row i), as v7. */
template <int G, int B, bool DENSE>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, (gq_minb_stream<G, B>::value)) gq_gemv_stream_kernel(const gq_gemv_args a) {
    constexpr int FULL = GQ_STREAM_FULL(G, DENSE), SHORT = GQ_STREAM_SHORT(G, DENSE);
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * GQ_ROW_WARPS + (threadIdx.x >> 5);
    if (i >= a.N) return;
    const int r = (!DENSE && a.row_order) ? a.row_order[i] : i;
    const int2 sr = a.srow[r];
    const char *p = reinterpret_cast<const char *>(a.stream) + (size_t)sr.x * 16;
    const int nf = sr.y >> 2, ns = sr.y & 3;
    const int kq = (lane % (G / 8)) * 8;
    const uint32_t n = (uint32_t)(a.K / 8); /* dense: quads per row; quad j is column 8 j */
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
    uint32_t j = (uint32_t)lane;
    for (int t = 0; t < nf; t++, p += FULL, j += 128) {
        uint32_t cw[4], sw[4], cl[4];
        gq_stream_full_load<G, DENSE>(p, lane, cw, sw, cl);
        if (t == 0) { /* the first round's loads are in flight before the wait */
            gq_pdl_wait();
            gq_pdl_trigger();
        }
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const uint32_t jq = j + 32u * q; /* dense padding quads (jq >= n) read column 0: valid, scale 0 */
            const int k0 = DENSE ? 8 * (int)(jq < n ? jq : 0u) : (int)cl[q] * G + kq;
            gq_quad<B, false, true>(a, k0, cw[q], sw[q], acc);
        }
    }
    for (int t = 0; t < ns; t++, p += SHORT, j += 32) {
        uint32_t cw, sw, cl;
        gq_stream_short_load<G, DENSE>(p, lane, cw, sw, cl);
        if (t == 0 && nf == 0) {
            gq_pdl_wait();
            gq_pdl_trigger();
        }
        const int k0 = DENSE ? 8 * (int)(j < n ? j : 0u) : (int)cl * G + kq;
        gq_quad<B, false, true>(a, k0, cw, sw, acc);
    }
    if (sr.y == 0) { /* an empty row: y is written after the wait too */
        gq_pdl_wait();
        gq_pdl_trigger();
    }
    gq_warp_sum<B>(acc);
    gq_store_row<B>(a, r, lane, acc);
}

#endif
