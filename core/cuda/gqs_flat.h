/* gqs_flat.h — the v2 GQS GEMV kernels: one "flat stream" kernel that serves the row split, Stream-K and
 * the dense W4 baseline (CUDA C++ only; launchers in gqs_gemv.cu and w4_gemv.cu; the partition and the
 * per-round bookkeeping are core/cuda/gqs_sk.h, emulated lane by lane on the CPU by
 * gq_gqs_flat_emulate in core/gqs_pack.c and tested there).
 *
 * Why (docs/PERF.md, v1): at batch 1 v1's time was ~5.7 us + 12.8 us per million units whatever the bytes
 * per unit (G8 with 43% more bytes than G16 cost 9% more; dense W4 with 2x the units cost 1.7x): the
 * per-unit gather of x through L1 (16-byte loads at random columns: one L1 wavefront per lane, 4 per
 * unit) bounded it, not DRAM. v2:
 *   - x staged once per CTA in shared memory with cp.async (swizzled, gqs_dev.h gq_xswz), issued before
 *     anything else; the inner loop has no dependent global load;
 *   - each warp streams a contiguous share of units, lanes taking units s + lane + 32 i regardless of
 *     rows, UNR 16-byte code loads (+ their metadata) per lane issued before any use (8 at batch 1);
 *   - per 32-unit round, a segmented warp sum per row (rows ascend across lanes), a carry for the row
 *     that continues into the next round, a flush (write, or Stream-K record) when a row ends;
 *   - a grid of #SMs x (CTAs per SM from the occupancy API) CTAs of GQ_FLAT_WARPS warps, one wave.
 * MODE 1 (Stream-K): equal unit shares, cut rows through the v1 records/counters (fix-up unchanged).
 * MODE 0 (row split): worker w takes rows [w*rpw, (w+1)*rpw) whole: no cut rows, and a warp whose rows
 * are heavy is the straggler the uneven benchmark shows. DENSE: the W4 baseline (rows of K/32 units).
 * Must not: allocate, synchronise the device, or hold state (graph capture); index register arrays with
 * run-time values (local memory).
 */
#ifndef GQ_CUDA_GQS_FLAT_H
#define GQ_CUDA_GQS_FLAT_H

#include <limits.h>

#include "gqs_dev.h"
#include "gqs_sk.h"

#define GQ_FLAT_WARPS 8              /* warps (workers) per CTA */
#define GQ_FLAT_XS_MAX (48 * 1024)   /* x in shared memory when nb * Kpad * 2 fits (no opt-in needed) */

/* Units in flight per lane: 8 x (16 B codes + metadata) at batch 1 (4 at G8, whose 40-byte units need
 * 10 registers each: 8 spilled in Stream-K); fewer where registers go to the batch. */
template <int G, int B> struct gq_flat_unroll {
    static constexpr int value = B == 1 ? (G == 8 ? 4 : 8) : B <= 4 ? 4 : 2;
};

/* 16-byte chunks per staged x row: K rounded up to 64 halfs, so the swizzle stays inside the row. */
static inline __host__ __device__ int gq_flat_kc(int K) { return (K + 63) / 64 * 8; }

__device__ __forceinline__ void gq_cp_async16(void *smem, const void *gmem) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(gmem) : "memory");
}
__device__ __forceinline__ void gq_cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

/* #{i in [0, n): arr[i] <= p}, arr ascending, by the warp (gqs_sk.h's 32-ary search; warp-uniform args). */
__device__ __forceinline__ int64_t gq_warp_count_le(const int32_t *arr, int64_t n, int64_t p, int lane) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t i = gq_sk_probe(lo, hi, lane);
        const bool pred = i < hi && (int64_t)__ldg(arr + i) <= p;
        const int c = __popc(__ballot_sync(0xFFFFFFFFu, pred));
        gq_sk_narrow(&lo, &hi, c);
    }
    return lo;
}

/* Row r's units end (exclusive). */
template <bool DENSE> __device__ __forceinline__ int64_t gq_flat_row_end(const gq_gemv_args &a, int r, int64_t upr) {
    if constexpr (DENSE) return (int64_t)(r + 1) * upr;
    else return __ldg(a.row_unit + r + 1);
}

/* Row r's total over this worker's share is v: write it (complete row) or publish it as a Stream-K record
 * and let the last of the row's workers sum the records in worker order (gqs_sk.h; one thread). */
template <int B, int MODE>
__device__ __forceinline__ void gq_flat_flush(const gq_gemv_args &a, int64_t w, int64_t s, int64_t e, int r, int64_t rs,
                                              int64_t re, const float (&v)[B]) {
    if (MODE == 0 || (rs >= s && re <= e)) {
#pragma unroll
        for (int b = 0; b < B; b++)
            if (b < a.nb) gq_store_y(a, b, r, v[b]);
        return;
    }
    float *rec = a.rec + (2 * w + (rs <= s ? 0 : 1)) * GQ_GEMV_MAX_BATCH;
#pragma unroll
    for (int b = 0; b < B; b++)
        if (b < a.nb) rec[b] = v[b];
    __threadfence(); /* release: the record is visible device-wide before the count */
    const int64_t wa = gq_sk_worker_of(a.U, a.W, rs), wb = gq_sk_worker_of(a.U, a.W, re - 1);
    if (atomicAdd(&a.cnt[r], 1) == (int)(wb - wa)) {
        __threadfence(); /* acquire: every other worker's record */
        for (int b = 0; b < a.nb; b++) {
            float sum = 0.f;
            for (int64_t v2 = wa; v2 <= wb; v2++)
                sum += __ldcg(a.rec + (2 * v2 + (rs <= gq_sk_begin(a.U, a.W, v2) ? 0 : 1)) * GQ_GEMV_MAX_BATCH + b);
            gq_store_y(a, b, r, sum);
        }
        a.cnt[r] = 0; /* ready for the next launch (stream-ordered) */
    }
}

/* Issue the loads of units ub0 + lane + 32 i (i < UNR) below e: all independent, none used yet. */
template <int G, bool DENSE, int UNR>
__device__ __forceinline__ void gq_flat_load(const gq_gemv_args &a, int64_t ub0, int64_t e, int lane, uint4 (&c)[UNR],
                                             uint32_t (&sm)[UNR][gq_ns<G>::value],
                                             uint32_t (&col)[UNR][gq_ns<G>::value]) {
#pragma unroll
    for (int i = 0; i < UNR; i++) {
        const int64_t u = ub0 + 32 * i + lane;
        if (u < e) {
            c[i] = gq_ld_stream_v4(a.codes + u);
            gq_load_meta<G, DENSE>(a, u, sm[i], col[i]);
        } else {
            c[i] = make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int j = 0; j < gq_ns<G>::value; j++) sm[i][j] = 0, col[i][j] = 0;
        }
    }
}

/* a.W workers (warps); MODE 0 also a.rpw rows per worker. Dynamic shared memory: XS ? nb * kc * 16 : 0. */
template <int G, int B, bool DENSE, bool XS, int MODE>
__global__ void __launch_bounds__(32 * GQ_FLAT_WARPS) gq_flat_kernel(const gq_gemv_args a) {
    extern __shared__ uint4 gq_xs[];
    constexpr int NS = gq_ns<G>::value, UNR = gq_flat_unroll<G, B>::value;
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * GQ_FLAT_WARPS + (threadIdx.x >> 5);
    const int kc = gq_flat_kc(a.K);
    const int64_t upr = a.K / 32; /* DENSE: units per row */
    const int32_t *ru = a.row_unit;

    /* 1. x -> shared memory, asynchronously (waited for just before the first use) */
    if constexpr (XS) {
        const int kx = a.K / 8, n = a.nb * kx;
        const uint4 *xg = reinterpret_cast<const uint4 *>(a.x);
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const int b = i / kx, cc = i - b * kx;
            gq_cp_async16(&gq_xs[b * kc + gq_xswz(cc)], xg + i);
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
    }

    /* 2. the share [s, e) and the rows [rA, rB) it visits (warp-uniform) */
    const bool active = w < a.W;
    int64_t s = 0, e = 0;
    int rA = 0, rB = 0;
    if (active) {
        if constexpr (MODE == 0) {
            const int64_t R0 = w * a.rpw, R1 = R0 + a.rpw < a.N ? R0 + a.rpw : a.N;
            rA = (int)R0, rB = (int)R1;
            if constexpr (DENSE) s = R0 * upr, e = R1 * upr;
            else s = __ldg(ru + R0), e = __ldg(ru + R1);
        } else {
            s = gq_sk_begin(a.U, a.W, w), e = gq_sk_begin(a.U, a.W, w + 1);
        }
    }

    /* 3. the first chunk's loads go out before the row search and the x wait */
    uint4 c[UNR];
    uint32_t sm[UNR][NS], col[UNR][NS];
    int64_t ub0 = s;
    gq_flat_load<G, DENSE, UNR>(a, ub0, e, lane, c, sm, col);

    if constexpr (MODE == 1) {
        if (active) {
            const int64_t L = gq_warp_count_le(ru, (int64_t)a.N + 1, s - 1, lane);
            rA = gq_sk_first_row_from(ru, L, s);
            const int64_t Le = gq_warp_count_le(ru, a.N, e - 1, lane);
            rB = gq_sk_row_end_from(Le, a.N, w == a.W - 1, rA);
        }
    }
    if constexpr (XS) {
        gq_cp_async_wait_all();
        __syncthreads(); /* every thread's chunks are in; the only barrier (idle warps reach it too) */
    }
    if (!active) return;

    /* 4. the stream: rounds of 32 consecutive units, UNR rounds per chunk of loads */
    int cur = rA;                                               /* this lane's row cursor */
    int64_t nx = s < e ? gq_flat_row_end<DENSE>(a, rA, upr) : 0; /* its end */
    int carry_row = -1;
    float carry[B];
#pragma unroll
    for (int b = 0; b < B; b++) carry[b] = 0.f;
    while (ub0 < e) {
#pragma unroll
        for (int i = 0; i < UNR; i++) {
            const int64_t ub = ub0 + 32 * i;
            if (ub >= e) break; /* warp-uniform */
            const int64_t u = ub + lane;
            const bool valid = u < e;
            float v[B];
#pragma unroll
            for (int b = 0; b < B; b++) v[b] = 0.f;
            int row = INT_MAX;
            if (valid) {
                while (nx <= u) nx = gq_flat_row_end<DENSE>(a, ++cur, upr);
                row = cur;
                gq_unit<G, B, DENSE, XS>(a, u, DENSE ? (int)(u - (int64_t)cur * upr) * 32 : 0, c[i], sm[i], col[i], v,
                                         gq_xs, kc);
            }
            /* segmented suffix sum: afterwards the first lane of each row's run holds the run's sum */
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                const int ro = __shfl_down_sync(0xFFFFFFFFu, row, off);
                const bool take = lane + off < 32 && ro == row;
#pragma unroll
                for (int b = 0; b < B; b++)
                    if (b < a.nb) {
                        const float t = __shfl_down_sync(0xFFFFFFFFu, v[b], off);
                        if (take) v[b] += t;
                    }
            }
            const int prow = __shfl_up_sync(0xFFFFFFFFu, row, 1);
            const bool head = valid && (lane == 0 || prow != row);
            if (lane == 0 && carry_row >= 0) /* lane 0's row is the carried one (gq_gqs_flat_emulate checks) */
#pragma unroll
                for (int b = 0; b < B; b++) v[b] += carry[b];
            const int64_t rend = ub + 32 < e ? ub + 32 : e;
            const bool cont = head && !gq_sk_round_flushes(nx, rend, e); /* at most the last run */
            const unsigned cm = __ballot_sync(0xFFFFFFFFu, cont);
            carry_row = -1;
            if (cm) {
                const int src = __ffs(cm) - 1;
                carry_row = __shfl_sync(0xFFFFFFFFu, row, src);
#pragma unroll
                for (int b = 0; b < B; b++)
                    if (b < a.nb) carry[b] = __shfl_sync(0xFFFFFFFFu, v[b], src);
            }
            if (head && !cont) {
                int64_t rs = 0;
                if constexpr (MODE == 1) rs = __ldg(ru + row);
                gq_flat_flush<B, MODE>(a, w, s, e, row, rs, nx, v);
            }
        }
        ub0 += 32 * UNR;
        if (ub0 < e) gq_flat_load<G, DENSE, UNR>(a, ub0, e, lane, c, sm, col);
    }

    /* 5. visited empty rows (zero, complete) and, for an empty share, the cut row it visits (record 0) */
    if constexpr (!DENSE) {
        for (int r = rA + lane; r < rB; r += 32) {
            const int64_t rs = __ldg(ru + r), re = __ldg(ru + r + 1);
            if (rs == re || s == e) {
                float z[B];
#pragma unroll
                for (int b = 0; b < B; b++) z[b] = 0.f;
                gq_flat_flush<B, MODE>(a, w, s, e, r, rs, re, z);
            }
        }
    }
}


/* Launch the v2 kernel on m: one wave of #SMs x k CTAs (k from the occupancy API, capped by 8 and by
 * gq_gqs_gpu_set_sk_ctas), x in shared memory when it fits. */
template <int G, int B, bool DENSE, int MODE, bool XS>
static gq_status gq_flat_launch_x(gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st) {
    const size_t smem = XS ? (size_t)a.nb * (size_t)gq_flat_kc(a.K) * 16 : 0;
    int occ = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_flat_kernel<G, B, DENSE, XS, MODE>,
                                                             32 * GQ_FLAT_WARPS, smem));
    int k = occ < 1 ? 1 : occ > 8 ? 8 : occ;
    if (m->sk_ctas > 0 && m->sk_ctas < k) k = m->sk_ctas;
    int64_t wmax = (int64_t)m->sm_count * k * GQ_FLAT_WARPS;
    if (m->max_flat_workers > 0 && m->max_flat_workers < wmax) wmax = m->max_flat_workers;
    if (MODE == 0) {
        a.rpw = gq_flat_rows_per_worker(a.N, wmax);
        a.W = (a.N + a.rpw - 1) / a.rpw;
    } else {
        a.W = wmax;
        m->last_workers = a.W;
    }
    GQ_ASSERT(a.W >= 1 && a.W <= m->max_workers);
    const int64_t ctas = (a.W + GQ_FLAT_WARPS - 1) / GQ_FLAT_WARPS;
    gq_flat_kernel<G, B, DENSE, XS, MODE><<<(unsigned)ctas, 32 * GQ_FLAT_WARPS, smem, st>>>(a);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

template <int G, int B, bool DENSE, int MODE> static gq_status gq_flat_launch(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
    if ((size_t)a.nb * (size_t)gq_flat_kc(a.K) * 16 <= GQ_FLAT_XS_MAX) return gq_flat_launch_x<G, B, DENSE, MODE, true>(m, a, st);
    return gq_flat_launch_x<G, B, DENSE, MODE, false>(m, a, st);
}

#endif
