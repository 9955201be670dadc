/* gqs_pipe.h — the v9 GEMV kernels (GQS and dense W4, batch 1-2): v7's quad walk and arithmetic with each
 * warp's rounds of weight loads software-pipelined (round t + 1 is issued before round t is computed),
 * across the rows of a warp, and x staged once per CTA in shared memory; and v10, the same kernel over
 * equal shares of rounds (TASK; GQS, batch 1). CUDA C++ only; launched by gq_gemv_launch_v9 /
 * gq_gemv_launch_v10 (gqs_gemv_v9.cu) for GQ_GEMV_ROW_V9, GQ_GEMV_DENSE_W4_V9 and GQ_GEMV_TASK_V10.
 *
 * Why (docs/PERF.md "v9"): v7 runs one warp per row, every warp of the grid in one wave, and a warp
 * issues a round's loads only after computing the round before. Nsight showed DRAM at 43% and issue at
 * 36%, neither saturated: the hypothesis was that all 8192 warps issue round 0 together, wait, compute
 * together while DRAM idles, then issue round 1. Here a warp keeps a round in flight while it computes;
 * the price is 12 registers per lane at batch 1, so fewer warps fit (32 per SM instead of 64) and each
 * warp takes P rows (P = N / resident warps, rounded up): with rows visited longest first, warp w takes
 * rows w, 2W - 1 - w, 2W + w, ... of that order (a long row with a short one), and its pipeline runs
 * across its rows' boundaries. x: v8's profile found the stall left after the weights was the x gather
 * (16-byte __ldg per quad through L1, its address known only when the column arrives); from shared
 * memory it is a 16-byte LDS (swizzled chunks, gq_xswz). Measured: 0.96-0.98x v7 in the kernel table,
 * 1.02x in decode (the GQS decode default); PERF.md "v9 and v10 measured".
 * Each row's quads are visited per lane in v7's order with v7's dequantization (gq_round_load /
 * gq_round_use, gqs_dev.h), so every v9 result is bit-identical to v7 and v3 (test_cuda_gemv checks).
 * Must not: read x before gq_pdl_wait() (weights and row metadata may be read before it), allocate or
 * synchronise; be used for B > 2 (the launcher runs v7 there: the batch-16 kernels are HFMA2-bound).
 */
#ifndef GQ_CUDA_GQS_PIPE_H
#define GQ_CUDA_GQS_PIPE_H

#include "gqs_dev.h"
#include "gqs_flat.h"

#define GQ_PIPE_WARPS 8  /* warps per CTA (x is staged once per CTA) */
#define GQ_PIPE_MAXP 32  /* rows per warp: one lane holds each row's metadata */
/* Rounds in the pipeline (round t + 1 is in flight while round t is computed). 3 was measured slower
 * everywhere (8192^2 S50 G16: 13.55 vs 12.85 us uniform; PERF.md "v9 and v10 measured"). */
#define GQ_PIPE_DEPTH 2

/* CTAs per SM the register budget is set for: 4 at batch 1 (64 registers, 32 warps per SM). At 5 (48
 * registers) ptxas spills a column index per round, and the spill store waits for the load it was
 * meant to keep in flight. */
template <int B> struct gq_minb_pipe { static constexpr int value = B == 1 ? 4 : 2; };

/* A warp's walk position: row slot k of its rows, round base jb (quad index in the row, warp-uniform),
 * that row's first quad q0 (global), quad count n and the end je of the walk in the row, broadcast from
 * lane k; the row index itself is fetched only to store the result. np: the warp's rows (lanes [0, np)
 * hold them). v9 walks every row whole (jb from 0, je = n); v10 (TASK) starts its first row at its
 * share's first round and may end its last row early (the next warp goes on), so its lanes also hold
 * each row's jb and je. */
struct gq_pcur {
    int k;
    uint32_t jb, q0, n, je;
    bool done;
};
struct gq_prows { /* lane k's row of the warp */
    uint32_t q0, n, jb, je;
};

template <bool TASK> __device__ __forceinline__ void gq_pcur_row(gq_pcur &c, int k, int np, const gq_prows &r) {
    c.k = k;
    c.done = k >= np;
    c.q0 = __shfl_sync(0xFFFFFFFFu, r.q0, k & 31);
    c.n = __shfl_sync(0xFFFFFFFFu, r.n, k & 31);
    if constexpr (TASK) {
        c.jb = __shfl_sync(0xFFFFFFFFu, r.jb, k & 31);
        c.je = __shfl_sync(0xFFFFFFFFu, r.je, k & 31);
    } else {
        c.jb = 0, c.je = c.n;
    }
}
/* The next round: the same row's next 32 x UNR quads, or the next row (an empty row has one round). */
template <bool TASK, int UNR> __device__ __forceinline__ void gq_pcur_next(gq_pcur &c, int np, const gq_prows &r) {
    c.jb += 32u * UNR;
    if (c.jb >= c.je) gq_pcur_row<TASK>(c, c.k + 1, np, r);
}

/* Round c into b: v7's loads (gq_round_load; lanes past the row read the next row's quads or the zeroed
 * padding, with scale|min forced to 0), then v7's dequantization with x from shared memory. */
template <int G, bool DENSE, int UNR>
__device__ __forceinline__ void gq_pipe_load(const gq_gemv_args &a, const gq_pcur &c, int lane, gq_qbuf<UNR> &b) {
    const uint32_t gq = c.q0 + c.jb + (uint32_t)lane, sl = gq / (G / 8);
    gq_round_load<G, DENSE, UNR>(reinterpret_cast<const uint32_t *>(a.codes) + gq, a.sm + sl, a.col + sl,
                                 c.jb + (uint32_t)lane, c.n, b);
}
template <int G, int B, bool DENSE, int UNR>
__device__ __forceinline__ void gq_pipe_use(const gq_gemv_args &a, const gq_pcur &c, int lane, const gq_qbuf<UNR> &b,
                                            float (&acc)[B], const uint4 *xs, int kc) {
    const uint32_t gq = c.q0 + c.jb + (uint32_t)lane;
    gq_round_use<G, B, DENSE, UNR, true>(a, 0, (int)(gq % (G / 8)) * 8, c.jb + (uint32_t)lane, c.n, b, acc, xs, kc);
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

/* ---- v10: the v9 pipeline over equal shares of rounds (task-centric) --------------------------------
 * Why (PERF.md "v10"): a row split, even v9's long-with-short pairing, leaves the warps unequal work when
 * rows are uneven (at 8192^2 S50 "uneven": 11 rounds for a warp with a full row and a light one, 6 for
 * two light ones), and the longest warp sets the time. With TASK, warp w takes rounds [w R / W, (w+1) R / W)
 * of the rows in order (gqs_pack.h gq_gqs_round_split, built for W = the resident warps, so the whole
 * grid is one wave), its pipeline running across the rows it holds. A row cut between warps is finished
 * by its owner (the warp holding its round 0, which reaches the row at the END of its share): the other
 * warps hold the row at the START of theirs, so their partial sums were published (value and flag in one
 * 64-bit st.release) long before the owner adds them (ld.acquire, in warp order: deterministic) and
 * writes the row, then resets the flags for the next launch. No spin can deadlock: every warp is
 * resident, and publishing never waits. Batch 1, GQS only. Measured 0.80-0.87x the best row split on
 * uneven rows (PERF.md "v9 and v10 measured"): kept as the task-centric kind of the benchmark. */
__device__ __forceinline__ void gq_st_release64(unsigned long long *p, unsigned long long v) {
    asm volatile("st.release.gpu.global.b64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ unsigned long long gq_ld_acquire64(const unsigned long long *p) {
    unsigned long long v;
    asm volatile("ld.acquire.gpu.global.b64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}

/* a.W warps. v9: a.rpw (P) rows each, row slot k of warp w being entry k W + w (k even) or
 * k W + W - 1 - w (k odd) of the longest-first order. v10 (TASK): the share a.pstart[w] .. a.pstart[w + 1].
 * Dynamic shared memory: nb * gq_flat_kc(K) * 16 bytes (x). */
template <int G, int B, bool DENSE, bool TASK>
__global__ void __launch_bounds__(32 * GQ_PIPE_WARPS, (gq_minb_pipe<B>::value)) gq_gemv_pipe_kernel(const gq_gemv_args a) {
    static_assert(B <= GQ_PIPE_MAXB && (!TASK || (B == 1 && !DENSE)), "v9 / v10 geometry");
    constexpr int UNR = gq_unroll_q<B>::value, D = GQ_PIPE_DEPTH;
    constexpr uint32_t QPR = 32u * UNR;
    extern __shared__ uint4 gq_pxs[];
    const int lane = threadIdx.x & 31;
    const int w = blockIdx.x * GQ_PIPE_WARPS + (threadIdx.x >> 5), W = (int)a.W;
    const int kc = gq_flat_kc(a.K);
    /* 1. this warp's rows: lane k < np holds row k's first quad, quad count, walk range and index */
    gq_prows rw = {0, 0, 0, 0};
    int r = 0, np = 0;
    int2 s0 = make_int2(0, 0); /* v10: the share runs from round s0.y of row s0.x ... */
    bool cut_end = false;      /* ... and its last row goes on in warp w + 1 */
    int nx2 = 0;               /* the first row of warp w + 2: is the row cut at this share's end also cut at w + 1's? */
    if constexpr (TASK) {
        int2 s1 = make_int2(0, 0);
        if (w < W) s0 = __ldg(a.pstart + w), s1 = __ldg(a.pstart + w + 1), nx2 = w + 1 < W ? __ldg(&a.pstart[w + 2].x) : a.N;
        cut_end = s1.y > 0;
        np = w < W ? (cut_end ? s1.x : s1.x - 1) - s0.x + 1 : 0;
        if (lane < np) {
            r = s0.x + lane;
            const int32_t lo = __ldg(a.row_unit + r), hi = __ldg(a.row_unit + r + 1);
            rw.q0 = 4u * (uint32_t)lo, rw.n = 4u * (uint32_t)(hi - lo);
            rw.jb = lane == 0 ? (uint32_t)s0.y * QPR : 0u;
            rw.je = lane == np - 1 && cut_end ? (uint32_t)s1.y * QPR : rw.n;
        }
    } else {
        const int P = (int)a.rpw;
        if (w < W) { /* only the last slot can fall past N, and then only for some warps */
            const int64_t last = (int64_t)(P - 1) * W + (((P - 1) & 1) ? W - 1 - w : w);
            np = last < a.N ? P : P - 1;
        }
        if (lane < np) {
            const int64_t idx = (int64_t)lane * W + ((lane & 1) ? W - 1 - w : w);
            int64_t lo, hi;
            r = gq_warp_row<DENSE>(a, (int)idx, lo, hi);
            rw.q0 = (uint32_t)(4 * lo), rw.n = (uint32_t)(4 * (hi - lo));
        }
    }
    /* 2. the first D - 1 rounds go out before x is waited for */
    gq_qbuf<UNR> buf[D];
    gq_pcur L, T;
    gq_pcur_row<TASK>(L, 0, np, rw);
    T = L;
#pragma unroll
    for (int d = 0; d < D - 1; d++)
        if (!L.done) {
            gq_pipe_load<G, DENSE, UNR>(a, L, lane, buf[d]);
            gq_pcur_next<TASK, UNR>(L, np, rw);
        }
    gq_pdl_wait();
    gq_pipe_stage_x(a, gq_pxs, kc);
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
                gq_pcur_next<TASK, UNR>(L, np, rw);
            }
            gq_pipe_use<G, B, DENSE, UNR>(a, T, lane, buf[s], acc, gq_pxs, kc);
            if (T.jb + QPR >= T.je) { /* this warp's last round of the row */
                gq_warp_sum<B>(acc);
                if constexpr (!TASK) {
                    gq_store_row<B>(a, __shfl_sync(0xFFFFFFFFu, r, T.k), lane, acc);
                } else if (T.k == 0 && s0.y != 0) { /* a later part of a row owned by an earlier warp: publish it */
                    if (lane == 0) gq_st_release64(a.ppart + w, 1ull << 32 | __float_as_uint(acc[0]));
                } else {
                    const int row = s0.x + T.k;
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
#pragma unroll
                for (int b = 0; b < B; b++) acc[b] = 0.f;
            }
            gq_pcur_next<TASK, UNR>(T, np, rw);
        }
    }
}

/* The v9 / v10 launcher: *launched = 1 if it applies, else 0 and nothing is launched (the caller runs
 * v9 for v10, v7 for v9). v9 needs B <= 2, x within 48 KB of shared memory and <= 32 rows per warp;
 * v10 batch 1 and m's round split. The resident warps of each kernel are asked of the occupancy API
 * once per matrix and batch (m->pipe_slots), not per launch. */
template <int G, int B, bool DENSE, bool TASK>
static gq_status gq_pipe_launch(gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st, int *launched) {
    const size_t smem = (size_t)a.nb * (size_t)gq_flat_kc(a.K) * 16;
    if (smem > 48 * 1024) return GQ_OK;
    if constexpr (TASK) {
        if (!m->pw || a.nb != 1) return GQ_OK;
        a.W = m->pw, a.pstart = m->pstart, a.ppart = m->ppart;
    } else {
        int64_t &slots = m->pipe_slots[DENSE][B - 1];
        if (!slots) {
            int occ = 0;
            CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_gemv_pipe_kernel<G, B, DENSE, false>,
                                                                     32 * GQ_PIPE_WARPS, smem));
            slots = occ < 1 ? -1 : (int64_t)occ * m->sm_count * GQ_PIPE_WARPS;
        }
        if (slots < 0) return GQ_OK;
        const int64_t P = (a.N + slots - 1) / slots;
        const int64_t W = (a.N + P - 1) / P;
        if (P > GQ_PIPE_MAXP || (P - 1) * W >= a.N) return GQ_OK; /* the kernel's np: only slot P - 1 may be empty */
        a.rpw = P;
        a.W = W;
    }
    const unsigned grid = (unsigned)((a.W + GQ_PIPE_WARPS - 1) / GQ_PIPE_WARPS);
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_pipe_kernel<G, B, DENSE, TASK>, dim3(grid), dim3(32 * GQ_PIPE_WARPS), smem, st, a));
    CUDA_CHECK_LAUNCH();
    *launched = 1;
    return GQ_OK;
}
/* Resident warps of the v10 kernel for m (the round split's W: the whole grid must be one wave). */
template <int G> static gq_status gq_ptask_slots(const gq_gqs_gpu *m, int64_t *slots) {
    const size_t smem = (size_t)gq_flat_kc(m->K) * 16;
    int occ = 0;
    *slots = 0;
    if (smem > 48 * 1024) return GQ_OK;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_gemv_pipe_kernel<G, 1, false, true>, 32 * GQ_PIPE_WARPS, smem));
    *slots = (int64_t)(occ > 0 ? occ : 0) * m->sm_count * GQ_PIPE_WARPS;
    return GQ_OK;
}

#endif
