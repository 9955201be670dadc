/* gqs_pipe.h — the v9 GEMV kernels (GQS and dense W4, batch 1-2): v7's quad walk and arithmetic with each
 * warp's rounds of weight loads software-pipelined (round t + D - 1 is issued before round t is
 * computed), across the rows of a warp, and x staged once per CTA in shared memory. CUDA C++ only;
 * dispatched from gqs_gemv.cu (GQ_GEMV_ROW_V9) and w4_gemv.cu (GQ_GEMV_DENSE_W4_V9) through
 * gq_gemv_launch_v9 (gqs_gemv_v9.cu).
 *
 * Why (docs/PERF.md "v9"): v7 runs one warp per row, every warp of the grid in one wave, and a warp
 * issues a round's loads only after computing the round before. Nsight showed DRAM at 43% and issue at
 * 36%, neither saturated: all 8192 warps issue round 0 together (7.3 MB), wait, compute together while
 * DRAM idles, then issue round 1 — the memory and the compute phases add instead of overlapping. Here a
 * warp keeps D - 1 rounds in flight while it computes, so the weight stream never pauses; the price is
 * (D - 1) x 12 registers per lane at batch 1, so fewer warps fit (40 per SM instead of 64) and each warp
 * takes P rows (P = N / resident warps, rounded up): with rows visited longest first, warp w takes rows
 * w, 2W - 1 - w, 2W + w, ... of that order (a long row with a short one), and its pipeline runs across
 * its rows' boundaries. x: v8's profile found the stall left after the weights was the x gather
 * (16-byte __ldg per quad through L1, its address known only when the column arrives); from shared
 * memory it is a 16-byte LDS (swizzled chunks, gq_xswz), which the XS=false study variant omits.
 * Each row's quads are visited per lane in v7's order with v7's dequantization (gq_quad LEAN), so every
 * result is bit-identical to v7 and v3 (test_cuda_gemv checks).
 * Must not: read x before gq_pdl_wait() (weights and row metadata may be read before it), allocate or
 * synchronise; be used for B > 2 (the launcher runs v7 there: the batch-16 kernels are HFMA2-bound).
 */
#ifndef GQ_CUDA_GQS_PIPE_H
#define GQ_CUDA_GQS_PIPE_H

#include "gqs_dev.h"
#include "gqs_flat.h"

#define GQ_PIPE_WARPS 8  /* warps per CTA (x is staged once per CTA) */
#define GQ_PIPE_MAXB 2   /* largest batch with a v9 kernel */
#define GQ_PIPE_MAXP 32  /* rows per warp: one lane holds each row's metadata */

/* CTAs per SM the register budget is set for: 4 at batch 1 (64 registers, 32 warps per SM). At 5 (48
 * registers) ptxas spills a column index per round, and the spill store waits for the load it was
 * meant to keep in flight. */
template <int B, int D> struct gq_minb_pipe { static constexpr int value = B == 1 ? 4 : 2; };

/* A warp's walk position: row slot k of its rows, round base jb (quad index in the row, warp-uniform),
 * and that row's first quad q0 (global) and quad count n, broadcast from lane k; the row index itself is
 * fetched only to store the result (gq_pcur_r). np: the warp's rows (lanes [0, np) hold them). */
struct gq_pcur {
    int k;
    uint32_t jb, q0, n;
    bool done;
};

__device__ __forceinline__ void gq_pcur_row(gq_pcur &c, int k, int np, uint32_t q0, uint32_t n) {
    c.k = k, c.jb = 0;
    c.done = k >= np;
    c.q0 = __shfl_sync(0xFFFFFFFFu, q0, k & 31);
    c.n = __shfl_sync(0xFFFFFFFFu, n, k & 31);
}
/* The next round: the same row's next 32 x UNR quads, or the next row (an empty row has one round). */
template <int UNR> __device__ __forceinline__ void gq_pcur_next(gq_pcur &c, int np, uint32_t q0, uint32_t n) {
    c.jb += 32u * UNR;
    if (c.jb >= c.n) gq_pcur_row(c, c.k + 1, np, q0, n);
}

/* Round c into b: v7's loads (base + immediate offsets; lanes past the row read the next row's quads or
 * the zeroed padding, with scale|min forced to 0). */
template <int G, bool DENSE, int UNR, class C>
__device__ __forceinline__ void gq_pipe_load(const gq_gemv_args &a, const C &c, int lane, gq_qbuf<UNR> &b) {
    constexpr uint32_t QPG = G / 8, SPR = 32 / QPG;
    const uint32_t gq = c.q0 + c.jb + (uint32_t)lane, jl = c.jb + (uint32_t)lane;
    const uint32_t *cp = reinterpret_cast<const uint32_t *>(a.codes) + gq;
    const uint32_t sl = gq / QPG;
    const uint32_t *sp = a.sm + sl;
    const uint16_t *lp = a.col + sl;
#pragma unroll
    for (int i = 0; i < UNR; i++) {
        b.cw[i] = gq_ld_stream_u32(cp + 32 * i);
        const uint32_t smv = gq_ld_stream_u32(sp + SPR * i);
        b.smw[i] = jl + 32u * i < c.n ? smv : 0u;
        if constexpr (!DENSE) b.colv[i] = gq_ld_stream_u16(lp + SPR * i);
        else b.colv[i] = 0;
    }
}
template <int G, int B, bool DENSE, int UNR, bool XS, class C>
__device__ __forceinline__ void gq_pipe_use(const gq_gemv_args &a, const C &c, int lane, const gq_qbuf<UNR> &b,
                                            float (&acc)[B], const uint4 *xs, int kc) {
    constexpr uint32_t QPG = G / 8;
    const uint32_t gq = c.q0 + c.jb + (uint32_t)lane, jl = c.jb + (uint32_t)lane;
    const int kq = (int)(gq % QPG) * 8;
#pragma unroll
    for (int i = 0; i < UNR; i++) {
        const uint32_t j = jl + 32u * i;
        const int k0 = DENSE ? (int)(j < c.n ? j : 0u) * 8 : (int)b.colv[i] * G + kq;
        gq_quad<B, XS, true>(a, k0, b.cw[i], b.smw[i], acc, xs, kc);
    }
}

/* x [nb, K] -> shared memory (16-byte chunks, swizzled), then the CTA's barrier. */
__device__ __forceinline__ void gq_pipe_stage_x(const gq_gemv_args &a, uint4 *xs, int kc) {
    const int kx = a.K / 8, nx = a.nb * kx;
    const uint4 *xg = reinterpret_cast<const uint4 *>(a.x);
    for (int i = threadIdx.x; i < nx; i += blockDim.x) {
        const int bb = i / kx, cc = i - bb * kx;
        xs[bb * kc + gq_xswz(cc)] = __ldg(xg + i);
    }
    __syncthreads(); /* the only barrier: warps without work reach it too */
}

/* a.W warps, a.rpw (P) rows each. Dynamic shared memory: XS ? nb * gq_flat_kc(K) * 16 : 0. */
template <int G, int B, bool DENSE, int D, bool XS>
__global__ void __launch_bounds__(32 * GQ_PIPE_WARPS, (gq_minb_pipe<B, D>::value)) gq_gemv_pipe_kernel(const gq_gemv_args a) {
    static_assert(D >= 2 && D <= 3 && B <= GQ_PIPE_MAXB, "v9 geometry");
    constexpr int UNR = gq_unroll_q<B>::value;
    extern __shared__ uint4 gq_pxs[];
    const int lane = threadIdx.x & 31;
    const int w = blockIdx.x * GQ_PIPE_WARPS + (threadIdx.x >> 5), W = (int)a.W, P = (int)a.rpw;
    const int kc = gq_flat_kc(a.K);
    /* 1. this warp's rows: lane k < np holds row k's first quad, quad count and index. Row slot k of
     * warp w is entry k W + w (k even) or k W + W - 1 - w (k odd) of the longest-first order, so only
     * the last slot can fall past N, and then only for some warps */
    uint32_t q0 = 0, n = 0;
    int r = 0;
    int np = 0;
    if (w < W) {
        const int64_t last = (int64_t)(P - 1) * W + (((P - 1) & 1) ? W - 1 - w : w);
        np = last < a.N ? P : P - 1;
    }
    if (lane < np) {
        const int64_t idx = (int64_t)lane * W + ((lane & 1) ? W - 1 - w : w);
        int64_t lo, hi;
        r = gq_warp_row<DENSE>(a, (int)idx, lo, hi);
        q0 = (uint32_t)(4 * lo), n = (uint32_t)(4 * (hi - lo));
    }
    /* 2. the first D - 1 rounds go out before x is waited for */
    gq_qbuf<UNR> buf[D];
    gq_pcur L, T;
    gq_pcur_row(L, 0, np, q0, n);
    T = L;
#pragma unroll
    for (int d = 0; d < D - 1; d++)
        if (!L.done) {
            gq_pipe_load<G, DENSE, UNR>(a, L, lane, buf[d]);
            gq_pcur_next<UNR>(L, np, q0, n);
        }
    gq_pdl_wait();
    if constexpr (XS) gq_pipe_stage_x(a, gq_pxs, kc);
    gq_pdl_trigger();
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
    /* 3. the pipeline: compute round t from buf[t % D] while rounds t+1 .. t+D-1 are in flight */
    for (;;) {
#pragma unroll
        for (int s = 0; s < D; s++) {
            if (T.done) return;
            if (!L.done) {
                gq_pipe_load<G, DENSE, UNR>(a, L, lane, buf[(s + D - 1) % D]);
                gq_pcur_next<UNR>(L, np, q0, n);
            }
            gq_pipe_use<G, B, DENSE, UNR, XS>(a, T, lane, buf[s], acc, gq_pxs, kc);
            if (T.jb + 32u * UNR >= T.n) { /* the row's last round */
                gq_warp_sum<B>(acc);
                gq_store_row<B>(a, __shfl_sync(0xFFFFFFFFu, r, T.k), lane, acc);
#pragma unroll
                for (int b = 0; b < B; b++) acc[b] = 0.f;
            }
            gq_pcur_next<UNR>(T, np, q0, n);
        }
    }
}

/* ---- v10: the v9 pipeline over equal shares of rounds (task-centric) --------------------------------
 * Why (PERF.md "v10"): a row split, even v9's long-with-short pairing, leaves the warps unequal work when
 * rows are uneven (at 8192^2 S50 "uneven": 11 rounds for a warp with a full row and a light one, 6 for
 * two light ones), and the longest warp sets the time. Here warp w takes rounds [w R / W, (w+1) R / W)
 * of the rows in order (gqs_pack.h gq_gqs_round_split, built at upload for W = the resident warps, so
 * the whole grid is one wave), its pipeline running across the rows it holds. A row cut between warps
 * is finished by its owner (the warp holding its round 0, which reaches the row at the END of its
 * share): the other warps hold the row at the START of theirs, so their partial sums were published
 * (value and flag in one 64-bit st.release) long before the owner adds them (ld.acquire, in warp order:
 * deterministic) and writes the row, then resets the flags for the next launch. No spin can deadlock:
 * every warp is resident, and publishing never waits. Batch 1 only. */
__device__ __forceinline__ void gq_st_release64(unsigned long long *p, unsigned long long v) {
    asm volatile("st.release.gpu.global.b64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ unsigned long long gq_ld_acquire64(const unsigned long long *p) {
    unsigned long long v;
    asm volatile("ld.acquire.gpu.global.b64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}

/* gq_pcur with the row's round range: the walk covers quads [jb, je) of each row (je = the share's end
 * in the warp's last row when the next warp continues it, else the row's end; one round for an empty row). */
struct gq_tcur {
    int k;
    uint32_t jb, q0, n, je;
    bool done;
};
__device__ __forceinline__ void gq_tcur_row(gq_tcur &c, int k, int np, uint32_t q0, uint32_t n, uint32_t jbg, uint32_t je) {
    c.k = k;
    c.done = k >= np;
    c.q0 = __shfl_sync(0xFFFFFFFFu, q0, k & 31);
    c.n = __shfl_sync(0xFFFFFFFFu, n, k & 31);
    c.jb = __shfl_sync(0xFFFFFFFFu, jbg, k & 31);
    c.je = __shfl_sync(0xFFFFFFFFu, je, k & 31);
}
template <int UNR>
__device__ __forceinline__ void gq_tcur_next(gq_tcur &c, int np, uint32_t q0, uint32_t n, uint32_t jbg, uint32_t je) {
    c.jb += 32u * UNR;
    if (c.jb >= c.je) gq_tcur_row(c, c.k + 1, np, q0, n, jbg, je);
}

template <int G, int D, bool XS>
__global__ void __launch_bounds__(32 * GQ_PIPE_WARPS, (gq_minb_pipe<1, D>::value)) gq_gemv_ptask_kernel(const gq_gemv_args a) {
    constexpr int UNR = gq_unroll_q<1>::value;
    constexpr uint32_t QPR = 32u * UNR;
    extern __shared__ uint4 gq_pxs[];
    const int lane = threadIdx.x & 31;
    const int w = blockIdx.x * GQ_PIPE_WARPS + (threadIdx.x >> 5), W = (int)a.W;
    const int kc = gq_flat_kc(a.K);
    /* 1. the share: rounds from {s0.x, s0.y} to {s1.x, s1.y}; lane k holds row s0.x + k */
    int2 s0 = make_int2(0, 0), s1 = make_int2(0, 0);
    int nx2 = 0; /* the first row of warp w + 2: is the row cut at this share's end also cut at w + 1's? */
    if (w < W) s0 = __ldg(a.pstart + w), s1 = __ldg(a.pstart + w + 1), nx2 = w + 1 < W ? __ldg(&a.pstart[w + 2].x) : a.N;
    const bool cut_end = s1.y > 0; /* the last row goes on in warp w + 1 */
    const int np = w < W ? (cut_end ? s1.x : s1.x - 1) - s0.x + 1 : 0;
    uint32_t q0 = 0, n = 0, jbg = 0, je = 0;
    if (lane < np) {
        const int r = s0.x + lane;
        const int32_t lo = __ldg(a.row_unit + r), hi = __ldg(a.row_unit + r + 1);
        q0 = 4u * (uint32_t)lo, n = 4u * (uint32_t)(hi - lo);
        jbg = lane == 0 ? (uint32_t)s0.y * QPR : 0u;
        je = lane == np - 1 && cut_end ? (uint32_t)s1.y * QPR : n ? n : 1u;
    }
    /* 2. the first D - 1 rounds go out before x is waited for */
    gq_qbuf<UNR> buf[D];
    gq_tcur L, T;
    gq_tcur_row(L, 0, np, q0, n, jbg, je);
    T = L;
#pragma unroll
    for (int d = 0; d < D - 1; d++)
        if (!L.done) {
            gq_pipe_load<G, false, UNR>(a, L, lane, buf[d]);
            gq_tcur_next<UNR>(L, np, q0, n, jbg, je);
        }
    gq_pdl_wait();
    if constexpr (XS) gq_pipe_stage_x(a, gq_pxs, kc);
    gq_pdl_trigger();
    float acc[1] = {0.f};
    for (;;) {
#pragma unroll
        for (int s = 0; s < D; s++) {
            if (T.done) return;
            if (!L.done) {
                gq_pipe_load<G, false, UNR>(a, L, lane, buf[(s + D - 1) % D]);
                gq_tcur_next<UNR>(L, np, q0, n, jbg, je);
            }
            gq_pipe_use<G, 1, false, UNR, XS>(a, T, lane, buf[s], acc, gq_pxs, kc);
            if (T.jb + QPR >= T.je) { /* this warp's last round of the row */
                gq_warp_sum<1>(acc);
                const int row = s0.x + T.k;
                const bool own = T.k > 0 || s0.y == 0;
                if (!own) { /* a later part of a row owned by an earlier warp: publish it */
                    if (lane == 0) gq_st_release64(a.ppart + w, 1ull << 32 | __float_as_uint(acc[0]));
                } else {
                    if (T.k == np - 1 && cut_end) { /* owner of a row cut at the share's end */
                        float t = acc[0];
                        if (lane == 0)
                            for (int j = w + 1;; j++) {
                                unsigned long long v;
                                while (((v = gq_ld_acquire64(a.ppart + j)) >> 32) == 0) __nanosleep(32);
                                t += __uint_as_float((uint32_t)v);
                                a.ppart[j] = 0;
                                if ((j == w + 1 ? nx2 : __ldg(&a.pstart[j + 1].x)) != row) break;
                            }
                        acc[0] = __shfl_sync(0xFFFFFFFFu, t, 0);
                    }
                    gq_store_row<1>(a, row, lane, acc);
                }
                acc[0] = 0.f;
            }
            gq_tcur_next<UNR>(T, np, q0, n, jbg, je);
        }
    }
}

/* Launches the v10 kernel when m has its round split (batch 1): *launched = 1. */
template <int G, int D, bool XS>
static gq_status gq_ptask_launch_dx(gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st, int *launched) {
    const size_t smem = XS ? (size_t)gq_flat_kc(a.K) * 16 : 0;
    if (!m->pw || a.nb != 1 || smem > 48 * 1024) return GQ_OK;
    a.W = m->pw, a.pstart = m->pstart, a.ppart = m->ppart;
    const unsigned grid = (unsigned)((a.W + GQ_PIPE_WARPS - 1) / GQ_PIPE_WARPS);
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_ptask_kernel<G, D, XS>, dim3(grid), dim3(32 * GQ_PIPE_WARPS), smem, st, a));
    CUDA_CHECK_LAUNCH();
    *launched = 1;
    return GQ_OK;
}
/* Resident warps of the v10 kernel for K (the round split's W: the whole grid must be one wave). */
template <int G, int D, bool XS> static gq_status gq_ptask_slots(const gq_gqs_gpu *m, int64_t *slots) {
    const size_t smem = XS ? (size_t)gq_flat_kc(m->K) * 16 : 0;
    int occ = 0;
    *slots = 0;
    if (smem > 48 * 1024) return GQ_OK;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_gemv_ptask_kernel<G, D, XS>, 32 * GQ_PIPE_WARPS, smem));
    *slots = (int64_t)(occ > 0 ? occ : 0) * m->sm_count * GQ_PIPE_WARPS;
    return GQ_OK;
}

/* Launches the v9 kernel if it applies (B <= 2, x fits 48 KB of shared memory, <= 32 rows per warp and
 * quad indices in 32 bits): *launched = 1; else *launched = 0 and nothing is launched (the caller runs
 * v7). Study switches (read once): GQSA_V9_DEPTH=2|3 (rounds in the pipeline, default 2), GQSA_V9_XS=0|1
 * (x from shared memory, default 1). */
template <int G, int B, bool DENSE, int D, bool XS>
static gq_status gq_pipe_launch_dx(gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st, int *launched) {
    const size_t smem = XS ? (size_t)a.nb * (size_t)gq_flat_kc(a.K) * 16 : 0;
    if (smem > 48 * 1024) return GQ_OK;
    int occ = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_gemv_pipe_kernel<G, B, DENSE, D, XS>,
                                                             32 * GQ_PIPE_WARPS, smem));
    if (occ < 1) return GQ_OK;
    const int64_t slots = (int64_t)occ * m->sm_count * GQ_PIPE_WARPS;
    const int64_t P = (a.N + slots - 1) / slots;
    const int64_t W = (a.N + P - 1) / P;
    if (P > GQ_PIPE_MAXP || (P - 1) * W >= a.N) return GQ_OK; /* the kernel's np: only slot P - 1 may be empty */
    a.rpw = P;
    a.W = W;
    const unsigned grid = (unsigned)((a.W + GQ_PIPE_WARPS - 1) / GQ_PIPE_WARPS);
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_pipe_kernel<G, B, DENSE, D, XS>, dim3(grid), dim3(32 * GQ_PIPE_WARPS), smem, st, a));
    CUDA_CHECK_LAUNCH();
    *launched = 1;
    return GQ_OK;
}

#endif
